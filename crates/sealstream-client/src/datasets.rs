//! Datasets on the server: making one (a draft of a range, or a signed
//! manifest as the agent writes it), completing a draft, listing them, and
//! a chunk's envelope through its dataset.

use reqwest::Method;

use sealstream_api::datasets::{CreateDataset, DatasetPage, DatasetView, ListParams, SignDataset};
use sealstream_api::{routes, JsonDocument};
use sealstream_core::chunk::ChunkEnvelope;
use sealstream_core::dataset::InclusionProof;
use sealstream_core::json;

use crate::market::{json_body, ClientError, MarketClient};

/// Largest envelope read (the server takes at most 1 MiB).
const MAX_ENVELOPE: u64 = 1 << 20;

/// Datasets asked for a page.
const PAGE: u32 = 500;

impl MarketClient {
    /// Makes a dataset: a draft of a range of a chain, or (with
    /// `manifest`) a signed one.
    pub fn create_dataset(&mut self, request: &CreateDataset) -> Result<DatasetView, ClientError> {
        self.call(Method::POST, routes::DATASETS, json_body(request))
    }

    /// Completes draft `id` with its signed manifest.
    pub fn sign_dataset(
        &mut self,
        id: &str,
        request: &SignDataset,
    ) -> Result<DatasetView, ClientError> {
        self.call(
            Method::PUT,
            &routes::dataset_manifest(id),
            json_body(request),
        )
    }

    /// One dataset.
    pub fn dataset(&mut self, id: &str) -> Result<DatasetView, ClientError> {
        self.get(&routes::dataset(id))
    }

    /// A page of the caller's datasets (an admin's: all), newest first.
    pub fn datasets(&mut self, page: &ListParams) -> Result<DatasetPage, ClientError> {
        self.get(&routes::datasets(page))
    }

    /// Every dataset of the caller's, page by page.
    pub fn all_datasets(&mut self) -> Result<Vec<DatasetView>, ClientError> {
        let mut all = Vec::new();
        loop {
            let page = self.datasets(&ListParams {
                limit: Some(PAGE),
                offset: Some(all.len() as u64),
            })?;
            let n = page.datasets.len();
            all.extend(page.datasets);
            if page.next_offset.is_none() || n == 0 {
                return Ok(all);
            }
        }
    }

    /// Chunk `index` of dataset `id`: its envelope (with `plaintextHash`
    /// withheld unless the caller owns the dataset).
    pub fn dataset_envelope(&mut self, id: &str, index: u64) -> Result<ChunkEnvelope, ClientError> {
        let path = routes::dataset_envelope(id, index);
        let bytes = self.get_bytes(&path, MAX_ENVELOPE)?;
        ChunkEnvelope::parse(&bytes).map_err(|e| self.protocol(format!("{path}: {e}")))
    }

    /// The inclusion proof (`sealstream.inclusion-proof.v1`) of chunk
    /// `index` against dataset `id`'s root, read strictly.
    pub fn dataset_proof(&mut self, id: &str, index: u64) -> Result<InclusionProof, ClientError> {
        let path = routes::dataset_proof(id, index);
        let bytes = self.get_bytes(&path, MAX_ENVELOPE)?;
        json::parse(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| InclusionProof::from_json(&v).map_err(|e| e.to_string()))
            .map_err(|e| self.protocol(format!("{path}: {e}")))
    }

    /// Uploads a signed `sealstream.dataset.v1` manifest (as written by the
    /// agent or `publish`); the server checks it against the chunks it
    /// holds. Returns the dataset id.
    pub fn upload_dataset(&mut self, manifest: &[u8]) -> Result<String, ClientError> {
        let manifest = json::parse(manifest)
            .map_err(|e| self.protocol(format!("dataset manifest is not JSON: {e}")))?;
        let request = CreateDataset {
            manifest: Some(JsonDocument::from_core(&manifest)),
            ..CreateDataset::default()
        };
        Ok(self.create_dataset(&request)?.id)
    }
}
