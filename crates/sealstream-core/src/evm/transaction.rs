//! An EVM transaction that pays: the chain's coin to an address, or an
//! ERC-20 `transfer(to, amount)` call; signed with a secp256k1 key as an
//! EIP-155 legacy transaction or an EIP-1559 (type 2) one.

use crate::identity::{sign_digest, EvmAddress};
use crate::keys::MachineSigningKey;
use sha3::{Digest, Keccak256};

use super::rlp::List;
use super::Uint256;

/// How the transaction pays for its gas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fees {
    /// EIP-155 legacy: one gas price.
    Legacy {
        /// Wei per gas.
        gas_price: u128,
    },
    /// EIP-1559 (type 2): a tip and a cap.
    Eip1559 {
        /// Wei per gas to the block producer.
        max_priority_fee_per_gas: u128,
        /// Most wei per gas paid in all (base fee and tip).
        max_fee_per_gas: u128,
    },
}

/// A transaction before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The sender's transaction count.
    pub nonce: u64,
    /// Gas pricing.
    pub fees: Fees,
    /// Most gas it may use.
    pub gas_limit: u64,
    /// The receiver, or the token contract.
    pub to: EvmAddress,
    /// Wei sent along.
    pub value: Uint256,
    /// Call data (empty for a plain transfer).
    pub data: Vec<u8>,
}

/// A signed transaction, as `eth_sendRawTransaction` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The encoded transaction.
    pub raw: Vec<u8>,
    /// Its hash (Keccak-256 of `raw`), the id nodes know it by.
    pub hash: [u8; 32],
}

/// The call data of ERC-20 `transfer(to, amount)`.
pub fn erc20_transfer(to: &EvmAddress, amount: &Uint256) -> Vec<u8> {
    // The first four bytes of keccak256("transfer(address,uint256)").
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(&to.0);
    data.extend_from_slice(&amount.0);
    data
}

impl Transaction {
    /// The fields both kinds share, after the fees: gas, to, value, data.
    fn body(&self, list: &mut List) {
        list.uint(u128::from(self.gas_limit))
            .bytes(&self.to.0)
            .uint_be(&self.value.0)
            .bytes(&self.data);
    }

    /// The fields up to the signature, and the type byte (EIP-2718) that
    /// prefixes the encoding, if any.
    fn unsigned(&self) -> (Option<u8>, List) {
        let mut list = List::new();
        match self.fees {
            Fees::Legacy { gas_price } => {
                list.uint(u128::from(self.nonce)).uint(gas_price);
                self.body(&mut list);
                (None, list)
            }
            Fees::Eip1559 {
                max_priority_fee_per_gas,
                max_fee_per_gas,
            } => {
                list.uint(u128::from(self.chain_id))
                    .uint(u128::from(self.nonce))
                    .uint(max_priority_fee_per_gas)
                    .uint(max_fee_per_gas);
                self.body(&mut list);
                list.list(&List::new()); // no access list
                (Some(2), list)
            }
        }
    }

    /// The hash the sender signs.
    pub fn signing_hash(&self) -> [u8; 32] {
        let (kind, mut list) = self.unsigned();
        if kind.is_none() {
            // EIP-155: the chain id and two empty values in place of v, r, s.
            list.uint(u128::from(self.chain_id)).uint(0).uint(0);
        }
        keccak(kind, &list.finish())
    }

    /// The transaction signed with `key`.
    pub fn sign(&self, key: &MachineSigningKey) -> SignedTransaction {
        let (signature, recovery) = sign_digest(key, self.signing_hash());
        let (kind, mut list) = self.unsigned();
        let v = match kind {
            None => u128::from(self.chain_id) * 2 + 35 + u128::from(recovery),
            Some(_) => u128::from(recovery),
        };
        list.uint(v)
            .uint_be(&signature[..32])
            .uint_be(&signature[32..]);
        let mut raw = Vec::new();
        raw.extend(kind);
        raw.extend_from_slice(&list.finish());
        let hash = Keccak256::digest(&raw).into();
        SignedTransaction { raw, hash }
    }
}

fn keccak(prefix: Option<u8>, body: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    if let Some(p) = prefix {
        hasher.update([p]);
    }
    hasher.update(body);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(hex: &str) -> EvmAddress {
        EvmAddress::parse(hex, "to").unwrap()
    }

    /// The example of EIP-155 itself.
    #[test]
    fn eip155_example() {
        let tx = Transaction {
            chain_id: 1,
            nonce: 9,
            fees: Fees::Legacy {
                gas_price: 20_000_000_000,
            },
            gas_limit: 21_000,
            to: address("0x3535353535353535353535353535353535353535"),
            value: Uint256::from_u128(1_000_000_000_000_000_000),
            data: Vec::new(),
        };
        assert_eq!(
            hex::encode(tx.signing_hash()),
            "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"
        );
        let key = MachineSigningKey::from_hex(&"46".repeat(32), "key").unwrap();
        let signed = tx.sign(&key);
        assert_eq!(
            hex::encode(&signed.raw),
            "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7640000\
             8025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d899\
             7f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
        );
        assert_eq!(
            signed.hash,
            <[u8; 32]>::from(Keccak256::digest(&signed.raw))
        );
    }

    #[test]
    fn eip1559_is_typed_and_recovers_the_sender() {
        let key = MachineSigningKey::from_hex(&"46".repeat(32), "key").unwrap();
        let tx = Transaction {
            chain_id: 31337,
            nonce: 0,
            fees: Fees::Eip1559 {
                max_priority_fee_per_gas: 1_000_000_000,
                max_fee_per_gas: 3_000_000_000,
            },
            gas_limit: 60_000,
            to: address("0x5fbdb2315678afecb367f032d93f642f64180aa3"),
            value: Uint256::default(),
            data: erc20_transfer(
                &address("0x3535353535353535353535353535353535353535"),
                &Uint256::from_u128(5),
            ),
        };
        let signed = tx.sign(&key);
        assert_eq!(signed.raw[0], 2, "EIP-2718 type 2");
        // The recovery id is the last item but the two 32-byte words.
        let n = signed.raw.len();
        let (r, s) = (&signed.raw[n - 66..n - 33], &signed.raw[n - 33..]);
        assert_eq!((r[0], s[0]), (0xa0, 0xa0), "r and s are 32-byte strings");
        let recovery = signed.raw[n - 67];
        assert!(recovery == 0x80 || recovery == 0x01, "{recovery:#x}");
        let mut compact = [0u8; 64];
        compact[..32].copy_from_slice(&r[1..]);
        compact[32..].copy_from_slice(&s[1..]);
        let id = secp256k1::ecdsa::RecoveryId::try_from(i32::from(recovery & 1)).unwrap();
        let sig = secp256k1::ecdsa::RecoverableSignature::from_compact(&compact, id).unwrap();
        let public = secp256k1::SECP256K1
            .recover_ecdsa(secp256k1::Message::from_digest(tx.signing_hash()), &sig)
            .unwrap();
        assert_eq!(EvmAddress::from_public_key(&public), key.address());
        assert_eq!(
            hex::encode(&tx.data[..4]),
            "a9059cbb",
            "transfer(address,uint256)"
        );
    }
}
