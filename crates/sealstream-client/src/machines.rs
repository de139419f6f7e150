//! Machines: registering one under the owner signed in, and listing them.

use reqwest::Method;

use sealstream_api::machines::{
    MachineList, MachineView, OperatorKeyView, RegisterMachine, RegisterOperatorKey,
};
use sealstream_api::routes;

use crate::market::{json_body, ClientError, MarketClient, Payload};

impl MarketClient {
    /// Registers a machine under the owner signed in (see
    /// [`crate::seller::register_machine`], which checks the signatures
    /// first).
    pub fn register_machine(
        &mut self,
        request: &RegisterMachine,
    ) -> Result<MachineView, ClientError> {
        self.call(Method::POST, routes::MACHINES, json_body(request))
    }

    /// The caller's machines (an admin's: all).
    pub fn machines(&mut self) -> Result<MachineList, ClientError> {
        self.get(routes::MACHINES)
    }

    /// One machine.
    pub fn machine(&mut self, did: &str) -> Result<MachineView, ClientError> {
        self.get(&routes::machine(did))
    }

    /// Registers (or replaces) the operator key of machine `did`, with
    /// which the server grants paid orders itself.
    pub fn register_operator_key(
        &mut self,
        did: &str,
        request: &RegisterOperatorKey,
    ) -> Result<OperatorKeyView, ClientError> {
        self.call(Method::PUT, &routes::operator_key(did), json_body(request))
    }

    /// The public half of machine `did`'s operator key.
    pub fn operator_key(&mut self, did: &str) -> Result<OperatorKeyView, ClientError> {
        self.get(&routes::operator_key(did))
    }

    /// Revokes machine `did`'s operator key.
    pub fn revoke_operator_key(&mut self, did: &str) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &routes::operator_key(did), Payload::Empty)
    }
}
