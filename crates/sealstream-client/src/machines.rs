//! Machines: registering one under the owner signed in, and listing them.

use reqwest::Method;

use sealstream_api::machines::{MachineList, MachineView, RegisterMachine};
use sealstream_api::routes;

use crate::market::{json_body, ClientError, MarketClient};

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
}
