//! Machine registration as an owner sends it (`POST /v1/machines`): the
//! registration statement signed by the machine's key (EIP-191) and by its
//! chain key, with the recipients its chunk keys are wrapped for.

use sealstream_api::registration::{MachineRegistration, RegistrationRecipient};
use sealstream_core::identity::Did;
use sealstream_core::keys::{ChainSigningKey, MachineSigningKey, RecipientPublicKey};
use serde_json::{json, Value};

/// One recipient: (recipientId, recipientType, public key).
pub type Recipient<'a> = (&'a str, &'a str, RecipientPublicKey);

/// The JSON body registering `machine_key`'s machine to `owner_did`, with
/// `chain_key`'s public half and `recipients`, signed by both keys.
pub fn body(
    owner_did: &str,
    machine_key: &MachineSigningKey,
    chain_key: &ChainSigningKey,
    recipients: &[Recipient<'_>],
) -> Value {
    let chain_public_key = chain_key.public_key();
    let registration = MachineRegistration {
        machine: Did::of_key(machine_key),
        owner: Did::parse(owner_did, "owner").expect("the owner's DID"),
        chain_public_key,
        recipients: recipients
            .iter()
            .map(|(id, kind, key)| RegistrationRecipient {
                recipient_id: (*id).to_string(),
                recipient_type: (*kind).to_string(),
                public_key: *key,
            })
            .collect(),
    };
    let signature = registration.sign(machine_key).to_hex();
    let chain_key_signature = registration
        .sign_chain_key(chain_key)
        .expect("the chain key signs the registration");
    let recipients: Vec<Value> = recipients
        .iter()
        .map(|(id, kind, key)| {
            json!({"recipientId": id, "recipientType": kind, "publicKeyHex": key.to_hex()})
        })
        .collect();
    json!({
        "machineDid": Did::of_key(machine_key).to_string(),
        "chainPublicKey": chain_public_key.to_hex(),
        "recipients": recipients,
        "signature": signature,
        "chainKeySignature": chain_key_signature,
    })
}
