//! Disclosure requests (`sealstream_api::disclosures`): auditors file them,
//! compliance officers and admins approve or reject, the requester reads
//! the disclosure while its access lasts, and parties read the notices
//! that concern them.

use reqwest::Method;

use sealstream_api::disclosures::{
    Approve, CreateRequest, DisclosureView, NoticeList, Reject, RequestList, RequestView,
};
use sealstream_api::routes;

use crate::market::{json_body, ClientError, MarketClient};

impl MarketClient {
    /// Files a disclosure request (auditors).
    pub fn create_disclosure_request(
        &mut self,
        request: &CreateRequest,
    ) -> Result<RequestView, ClientError> {
        self.call(
            Method::POST,
            routes::DISCLOSURE_REQUESTS,
            json_body(request),
        )
    }

    /// The caller's requests (auditors), or all (compliance, admins).
    pub fn disclosure_requests(&mut self) -> Result<RequestList, ClientError> {
        self.get(routes::DISCLOSURE_REQUESTS)
    }

    /// One request.
    pub fn disclosure_request(&mut self, id: &str) -> Result<RequestView, ClientError> {
        self.get(&routes::disclosure_request(id))
    }

    /// Approves a request (compliance, admins; never the requester).
    pub fn approve_disclosure(&mut self, id: &str, seal: bool) -> Result<RequestView, ClientError> {
        self.call(
            Method::POST,
            &routes::disclosure_approve(id),
            json_body(&Approve { seal }),
        )
    }

    /// Rejects a request.
    pub fn reject_disclosure(
        &mut self,
        id: &str,
        reason: &str,
    ) -> Result<RequestView, ClientError> {
        self.call(
            Method::POST,
            &routes::disclosure_reject(id),
            json_body(&Reject {
                reason: reason.into(),
            }),
        )
    }

    /// What an approved request discloses (its requester, while it lasts).
    pub fn disclosure(&mut self, id: &str) -> Result<DisclosureView, ClientError> {
        self.get(&routes::disclosure(id))
    }

    /// The disclosures that concern the caller.
    pub fn disclosure_notices(&mut self) -> Result<NoticeList, ClientError> {
        self.get(routes::DISCLOSURE_NOTICES)
    }
}
