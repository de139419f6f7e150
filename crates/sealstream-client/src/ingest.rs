//! A machine's chains on the server: uploading chunks (envelope and
//! ciphertext, one multipart request each), what the server holds, and
//! reading chunks back.

use reqwest::Method;

use sealstream_api::ingest::{
    ChunkList, ChunkPage, TopicList, UploadAnswer, CIPHERTEXT_PART, ENVELOPE_PART,
};
use sealstream_api::routes;

use crate::market::{ClientError, MarketClient, Payload};

const BOUNDARY: &str = "sealstream-boundary-7f1c9a4e2b";

/// The multipart body of one chunk: the envelope part, then the
/// ciphertext part.
fn chunk_form(index: u64, envelope: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let head_env = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{ENVELOPE_PART}\"; filename=\"chunk-{index}.json\"\r\nContent-Type: application/json\r\n\r\n"
    );
    let head_bin = format!(
        "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{CIPHERTEXT_PART}\"; filename=\"chunk-{index}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let mut body = Vec::with_capacity(
        head_env.len() + envelope.len() + head_bin.len() + ciphertext.len() + tail.len(),
    );
    body.extend_from_slice(head_env.as_bytes());
    body.extend_from_slice(envelope);
    body.extend_from_slice(head_bin.as_bytes());
    body.extend_from_slice(ciphertext);
    body.extend_from_slice(tail.as_bytes());
    body
}

impl MarketClient {
    /// Uploads chunk `index` of `topic` of the machine signed in: the
    /// envelope JSON as written, then the ciphertext (one copy of the chunk
    /// is held while it is sent, and sent again as is if the session
    /// expired).
    pub fn upload_chunk(
        &mut self,
        topic: &str,
        index: u64,
        envelope: &[u8],
        ciphertext: &[u8],
    ) -> Result<UploadAnswer, ClientError> {
        let path = routes::chunk(&self.did().to_string(), topic, index);
        let body = bytes::Bytes::from(chunk_form(index, envelope, ciphertext));
        self.call(
            Method::PUT,
            &path,
            Payload::Upload(format!("multipart/form-data; boundary={BOUNDARY}"), body),
        )
    }

    /// A machine's chains on the server.
    pub fn topics(&mut self, machine_did: &str) -> Result<TopicList, ClientError> {
        self.get(&routes::topics(machine_did))
    }

    /// What the server holds of `topic` for the machine signed in: the
    /// number of chunks and the head chunk's id (`(0, None)` when nothing).
    pub fn chain_head(&mut self, topic: &str) -> Result<(u64, Option<String>), ClientError> {
        let did = self.did().to_string();
        let list = self.topics(&did)?;
        Ok(list
            .topics
            .into_iter()
            .find(|t| t.topic == topic)
            .map_or((0, None), |t| (t.chunk_count, Some(t.head_chunk_id))))
    }

    /// A page of a chain's chunks (envelopes and metadata).
    pub fn chunks(
        &mut self,
        machine_did: &str,
        topic: &str,
        page: &ChunkPage,
    ) -> Result<ChunkList, ClientError> {
        self.get(&routes::chunks(machine_did, topic, page))
    }

    /// A chunk's ciphertext, at most `limit` bytes.
    pub fn chunk_ciphertext(
        &mut self,
        machine_did: &str,
        topic: &str,
        index: u64,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&routes::chunk_ciphertext(machine_did, topic, index), limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_form_has_the_envelope_first() {
        let form = String::from_utf8(chunk_form(3, b"{}", b"xyz")).unwrap();
        let envelope = form
            .find("name=\"envelope\"; filename=\"chunk-3.json\"")
            .unwrap();
        let ciphertext = form
            .find("name=\"ciphertext\"; filename=\"chunk-3.bin\"")
            .unwrap();
        assert!(envelope < ciphertext);
        assert!(form.ends_with("xyz\r\n--sealstream-boundary-7f1c9a4e2b--\r\n"));
    }
}
