"""Run a command and report its peak resident set size.

Usage: maxrss.py [--stdin-bytes N | --stdin-file PATH] [--stdout-null] -- CMD ARGS...
With --stdin-bytes, N bytes of a fixed pattern are streamed to the command's
stdin (never held in memory); with --stdin-file, the file is its stdin. With
--stdout-null its stdout is discarded. Prints `maxrss_kib=K exit=E` on
stderr's last line.
"""
import resource
import subprocess
import sys

args = sys.argv[1:]
stdin_bytes = None
stdin_file = None
stdout = None
while args and args[0] != "--":
    if args[0] == "--stdin-bytes":
        stdin_bytes = int(args[1])
        args = args[2:]
    elif args[0] == "--stdin-file":
        stdin_file = args[1]
        args = args[2:]
    elif args[0] == "--stdout-null":
        stdout = subprocess.DEVNULL
        args = args[1:]
    else:
        sys.exit(f"maxrss.py: unknown option {args[0]}")
if args and args[0] == "--":
    args = args[1:]

if stdin_file is not None:
    with open(stdin_file, "rb") as f:
        code = subprocess.run(args, stdin=f, stdout=stdout).returncode
elif stdin_bytes is None:
    code = subprocess.run(args, stdout=stdout).returncode
else:
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=stdout)
    block = bytes((i * 31 + 7) % 256 for i in range(1 << 20))
    left = stdin_bytes
    while left > 0:
        n = min(len(block), left)
        p.stdin.write(block[:n])
        left -= n
    p.stdin.close()
    code = p.wait()
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"maxrss_kib={kib} exit={code}", file=sys.stderr)
sys.exit(code)
