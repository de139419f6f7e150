"""Seed inputs for the ros2_cdr and ros2_cdr_fixed fuzz targets.

Real ROS 2 Humble messages (NavSatFix, DiagnosticArray, PointCloud2), serialised
as CDR by rosbags in both byte orders, plus one hand-encoded
fuzz_msgs/msg/AllTypes payload (rosbags does not write wstring).

    ../.venv/bin/python seeds/make_cdr_seeds.py corpus

writes corpus/ros2_cdr/* (`<type>\n<definition>\0<payload>`) and
corpus/ros2_cdr_fixed/* (`<schema selector byte><payload>`, the selector as in
fuzz_targets/ros2_cdr_fixed.rs). Needs rosbags and numpy
(scripts/setup-test-peers installs them into .venv).
"""
import os
import struct
import sys

import numpy as np
from rosbags.typesys import Stores, get_typestore

out = sys.argv[1] if len(sys.argv) > 1 else 'corpus'
ts = get_typestore(Stores.ROS2_HUMBLE)
T = ts.types
Time = T['builtin_interfaces/msg/Time']
Header = T['std_msgs/msg/Header']

def hdr(fid):
    return Header(stamp=Time(sec=1763719200, nanosec=123456789), frame_id=fid)

navs = [
    T['sensor_msgs/msg/NavSatFix'](
        header=hdr('gps'),
        status=T['sensor_msgs/msg/NavSatStatus'](status=0, service=1),
        latitude=48.137154, longitude=11.576124, altitude=519.5,
        position_covariance=np.array([0.1, 0, 0, 0, 0.1, 0, 0, 0, 0.4], dtype=np.float64),
        position_covariance_type=2),
    T['sensor_msgs/msg/NavSatFix'](
        header=hdr(''),
        status=T['sensor_msgs/msg/NavSatStatus'](status=-1, service=15),
        latitude=float('nan'), longitude=float('inf'), altitude=-0.0,
        position_covariance=np.zeros(9, dtype=np.float64),
        position_covariance_type=0),
]
KV = T['diagnostic_msgs/msg/KeyValue']
DS = T['diagnostic_msgs/msg/DiagnosticStatus']
diags = [
    T['diagnostic_msgs/msg/DiagnosticArray'](header=hdr('base_link'), status=[
        DS(level=0, name='motor', message='ok', hardware_id='m1',
           values=[KV(key='temp', value='41.5'), KV(key='rpm', value='1200')]),
        DS(level=2, name='gps \u00fc\u6f22', message='no fix', hardware_id='', values=[]),
    ]),
    T['diagnostic_msgs/msg/DiagnosticArray'](header=hdr('x'), status=[]),
]
PF = T['sensor_msgs/msg/PointField']
clouds = [T['sensor_msgs/msg/PointCloud2'](
    header=hdr('lidar'), height=1, width=2,
    fields=[PF(name='x', offset=0, datatype=7, count=1), PF(name='y', offset=4, datatype=7, count=1)],
    is_bigendian=False, point_step=8, row_step=16,
    data=np.arange(16, dtype=np.uint8), is_dense=True)]

def msgdef(name):
    return ts.generate_msgdef(name, ros_version=2)[0]

def write(d, fname, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), 'wb') as f:
        f.write(data)

for sel, (name, msgs) in enumerate([('sensor_msgs/msg/NavSatFix', navs),
                                    ('diagnostic_msgs/msg/DiagnosticArray', diags),
                                    ('sensor_msgs/msg/PointCloud2', clouds)]):
    short = name.split('/')[-1].lower()
    for i, m in enumerate(msgs):
        for le in (True, False):
            payload = bytes(ts.serialize_cdr(m, name, little_endian=le))
            tag = f'{short}-{i}-{"le" if le else "be"}'
            write(f'{out}/ros2_cdr', tag, f'{name}\n{msgdef(name)}'.encode() + b'\0' + payload)
            if sel < 2:
                write(f'{out}/ros2_cdr_fixed', tag, bytes([sel]) + payload)

# fuzz_msgs/msg/AllTypes (schema 2 of ros2_cdr_fixed), written by hand since
# rosbags does not write wstring: little-endian, XCDR1 alignment counted from
# the first byte after the 4-byte header, field by field as in ALL_TYPES.
class Writer:
    def __init__(self):
        self.body = bytearray()

    def prim(self, fmt, value):
        size = struct.calcsize('<' + fmt)
        while len(self.body) % size:
            self.body.append(0)
        self.body += struct.pack('<' + fmt, value)

    def string(self, text):
        data = text.encode() + b'\0'
        self.prim('I', len(data))
        self.body += data

    def wstring(self, text):
        units = text.encode('utf-16-le')
        self.prim('I', len(units) // 2)
        for i in range(0, len(units), 2):
            self.prim('I', units[i] | units[i + 1] << 8)

    def inner(self, flags):
        self.prim('i', 7)  # t.sec
        self.prim('I', 8)  # t.nanosec
        self.prim('I', flags)  # flags[]
        self.body += bytes([1, 0] * flags)[:flags]
        self.prim('I', 1)  # names[]
        self.wstring('n')


w = Writer()
for fmt, value in [('B', 1), ('B', 0xab), ('B', ord('c')), ('b', -5), ('B', 250),
                   ('h', -300), ('H', 60000), ('i', -70000), ('I', 4000000000),
                   ('q', -(1 << 40)), ('Q', (1 << 64) - 1), ('f', 1.5), ('d', -2.25)]:
    w.prim(fmt, value)  # b .. f64
w.string('hello')  # s
w.string('abc')  # sb
w.wstring('w\u00e9\U0001f600')  # ws (a surrogate pair)
w.wstring('ab')  # wsb
for v in (1, -2, 3):
    w.prim('h', v)  # fixed
w.prim('I', 2)  # seq
w.prim('d', 0.5)
w.prim('d', 1e300)
w.prim('I', 3)  # bseq
w.body += bytes([1, 2, 3])
w.string('x')  # strs
w.string('')
w.prim('I', 2)  # bstrs
w.string('ab')
w.string('c')
w.inner(2)  # inners
w.inner(0)
w.prim('I', 1)  # inner_seq
w.inner(1)
w.prim('I', 0)  # inner_bseq
w.prim('i', -1)  # d.sec
w.prim('I', 999999999)  # d.nanosec
w.prim('B', 0)  # e
w.prim('I', 2)  # empties
w.prim('B', 0)
w.prim('B', 0)
payload = b'\x00\x01\x00\x00' + bytes(w.body)
write(f'{out}/ros2_cdr_fixed', 'alltypes-0-le', bytes([2]) + payload)
