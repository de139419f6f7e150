//! The receipt logs (`sealstream_api::receipts::log`): signed heads,
//! period-total proofs, consistency paths and a receipt's inclusion, as the
//! server serves them (each read with its type's `parse`).

use sealstream_api::errors::encode_query;
use sealstream_api::receipts::log::{ConsistencyQuery, LogQuery, TotalQuery};
use sealstream_api::routes;

use crate::market::{ClientError, MarketClient};

/// Largest answer read: a proof holds about 2 log2(n) nodes, an inclusion
/// two heads and paths.
const MAX_ANSWER: u64 = 1 << 20;

impl MarketClient {
    /// A log's tree head, signed now (`SignedLogHead::parse`).
    pub fn receipt_log_head(&mut self, query: &LogQuery) -> Result<Vec<u8>, ClientError> {
        let path = routes::with_query(routes::RECEIPT_LOG_HEAD.into(), &encode_query(query));
        self.get_bytes(&path, MAX_ANSWER)
    }

    /// A proof of a period's totals (`TotalProof::parse`).
    pub fn receipt_log_total(&mut self, query: &TotalQuery) -> Result<Vec<u8>, ClientError> {
        let path = routes::with_query(routes::RECEIPT_LOG_TOTAL.into(), &encode_query(query));
        self.get_bytes(&path, MAX_ANSWER)
    }

    /// The consistency path from an older size to the log's current head
    /// (`LogConsistency::from_extension`).
    pub fn receipt_log_consistency(
        &mut self,
        query: &ConsistencyQuery,
    ) -> Result<Vec<u8>, ClientError> {
        let path = routes::with_query(routes::RECEIPT_LOG_CONSISTENCY.into(), &encode_query(query));
        self.get_bytes(&path, MAX_ANSWER)
    }

    /// An order's receipt in the logs, with its opening (`ReceiptLogs::parse`).
    pub fn receipt_logs(&mut self, order_id: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&routes::order_receipt_log(order_id), MAX_ANSWER)
    }
}
