//! Listings: making, publishing and withdrawing them, and disclosing
//! sample chunk keys (see [`crate::seller::create_listing`], which opens
//! the keys).

use reqwest::Method;

use sealstream_api::listings::{
    Card, CreateListing, ListingList, ListingView, MyListings, PatchListing, PostSamples,
    SampleView, SamplesDisclosed,
};
use sealstream_api::routes;

use crate::market::{json_body, ClientError, MarketClient, NoFields};

/// Largest sample ciphertext read (the server takes chunks of at most
/// 256 MiB).
const MAX_SAMPLE: u64 = 256 << 20;

/// Listings asked for a page (the server's most).
const PAGE: u32 = 100;

impl MarketClient {
    /// Makes a draft listing.
    pub fn create_listing(&mut self, request: &CreateListing) -> Result<ListingView, ClientError> {
        self.call(Method::POST, routes::LISTINGS, json_body(request))
    }

    /// One listing: a published one for anyone, a draft or withdrawn one
    /// for its owner only.
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

    /// Changes the fields `request` gives of a draft listing.
    pub fn patch_listing(
        &mut self,
        id: &str,
        request: &PatchListing,
    ) -> Result<ListingView, ClientError> {
        self.call(Method::PATCH, &routes::listing(id), json_body(request))
    }

    /// A page of the caller's own listings.
    pub fn my_listings(&mut self, page: &MyListings) -> Result<ListingList, ClientError> {
        self.get(&routes::my_listings(page))
    }

    /// Every listing of the caller's, page by page, by id.
    pub fn all_my_listings(&mut self) -> Result<Vec<ListingView>, ClientError> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.my_listings(&MyListings {
                mine: true,
                limit: Some(PAGE),
                cursor: cursor.take(),
            })?;
            let n = page.items.len();
            all.extend(page.items);
            match page.next_cursor {
                Some(next) if n > 0 => cursor = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// The Dazaar-style card of a published listing (public).
    pub fn listing_card(&mut self, id: &str) -> Result<Card, ClientError> {
        self.get_public(&routes::listing_card(id))
    }

    /// Sample chunk `index` of listing `id`, its key sealed to
    /// `recipient_public_key` (64 hex digits; public).
    pub fn sample(
        &mut self,
        id: &str,
        index: u64,
        recipient_public_key: &str,
    ) -> Result<SampleView, ClientError> {
        self.get_public(&routes::listing_sample(id, index, recipient_public_key))
    }

    /// The ciphertext of sample chunk `index` of listing `id` (public).
    pub fn sample_ciphertext(&mut self, id: &str, index: u64) -> Result<Vec<u8>, ClientError> {
        self.get_public_bytes(&routes::listing_sample_ciphertext(id, index), MAX_SAMPLE)
    }
}
