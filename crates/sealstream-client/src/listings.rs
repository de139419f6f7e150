//! Listings: making, publishing and withdrawing them, and disclosing
//! sample chunk keys (see [`crate::seller::create_listing`], which opens
//! the keys).

use reqwest::Method;

use sealstream_api::listings::{CreateListing, ListingView, PostSamples, SamplesDisclosed};
use sealstream_api::routes;

use crate::market::{json_body, ClientError, MarketClient, NoFields};

impl MarketClient {
    /// Makes a draft listing.
    pub fn create_listing(&mut self, request: &CreateListing) -> Result<ListingView, ClientError> {
        self.call(Method::POST, routes::LISTINGS, json_body(request))
    }

    /// One listing.
    pub fn listing(&mut self, id: &str) -> Result<ListingView, ClientError> {
        self.get(&routes::listing(id))
    }

    /// Publishes a listing: it enters the catalog.
    pub fn publish_listing(&mut self, id: &str) -> Result<ListingView, ClientError> {
        self.call(
            Method::POST,
            &routes::listing_publish(id),
            json_body(&NoFields {}),
        )
    }

    /// Withdraws a listing for good.
    pub fn withdraw_listing(&mut self, id: &str) -> Result<ListingView, ClientError> {
        self.call(
            Method::POST,
            &routes::listing_withdraw(id),
            json_body(&NoFields {}),
        )
    }

    /// Discloses the keys of sample chunks of listing `id`.
    pub fn disclose_samples(
        &mut self,
        id: &str,
        request: &PostSamples,
    ) -> Result<SamplesDisclosed, ClientError> {
        self.call(
            Method::POST,
            &routes::listing_samples(id),
            json_body(request),
        )
    }
}
