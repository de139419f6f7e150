//! The signed receipt inside a PDF receipt (`GET /v1/orders/{id}/receipt?format=pdf`,
//! docs/formats.md "Receipt PDFs"): the PDF/A-3 document carries the signed
//! JSON receipt as the associated file `receipt.json`; [`extract_receipt`]
//! reads it back the way a viewer finds attachments — trailer, catalog,
//! `/Names /EmbeddedFiles` name tree — so a PDF rewritten by another tool
//! (object streams, compressed streams, renumbered objects, incremental
//! updates) still yields the attachment the document actually references.
//!
//! Only the attachment is signed: what the page shows is a rendering of
//! it. The bytes returned are then read and verified exactly as a JSON
//! receipt file is ([`super::SignedDocument::parse`]); nothing here is
//! trusted beyond finding those bytes.

use hayro_syntax::object::{Array, Dict, Stream, String as PdfString};
use hayro_syntax::Pdf;

/// The attachment's file name (its name-tree key, `/F` and `/UF`).
pub const RECEIPT_PDF_ATTACHMENT: &str = "receipt.json";
/// The attachment's MIME type (`/Subtype` of its embedded file stream).
pub const RECEIPT_PDF_MIME: &str = "application/json";
/// The largest PDF read (a receipt PDF is some tens of KiB).
pub const MAX_RECEIPT_PDF_BYTES: usize = 32 << 20;
/// The largest attachment read, as stored (compressed or not) and decoded:
/// receipts are a few KiB. Bounds what a compressed stream may inflate to.
pub const MAX_RECEIPT_ATTACHMENT_BYTES: usize = 256 << 10;
/// How deep a name tree is followed, and how many entries are read.
const MAX_TREE_DEPTH: usize = 32;
const MAX_TREE_ENTRIES: usize = 10_000;

/// Why no receipt could be taken from a PDF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfReceiptError {
    /// The bytes do not read as a PDF document.
    #[error("not a readable PDF document ({0})")]
    NotPdf(String),
    /// The PDF has no `receipt.json` attachment: not a receipt PDF.
    #[error("not a receipt PDF: it has no receipt.json attachment")]
    NoAttachment,
    /// More than one file is attached as `receipt.json`: which one a
    /// viewer shows is not defined, so none is taken.
    #[error("{0} files are attached as receipt.json (a receipt PDF has one): the PDF was changed")]
    TwoAttachments(usize),
    /// The attachment is not an associated file of the document (not in
    /// the catalog's `/AF`), as the PDF/A-3 receipt's is.
    #[error("the receipt.json attachment is not listed in the document's associated files (/AF): the PDF was changed")]
    NotAssociated,
    /// The attachment's data cannot be read or decoded, or is too large.
    #[error("the receipt.json attachment cannot be read: {0}")]
    Unreadable(String),
}

impl PdfReceiptError {
    /// Whether the PDF is a receipt PDF that was changed (two receipts,
    /// the receipt no longer associated, its data broken), as opposed to
    /// not a receipt PDF at all.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            PdfReceiptError::TwoAttachments(_)
                | PdfReceiptError::NotAssociated
                | PdfReceiptError::Unreadable(_)
        )
    }
}

/// Whether `bytes` are a PDF (they start with `%PDF-`).
pub fn is_pdf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-")
}

/// A text string of a PDF (PDFDocEncoding, which is ASCII for the names
/// that matter here, or UTF-16BE with a byte order mark).
fn pdf_text(bytes: &[u8]) -> String {
    match bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        None => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The entries (key, file specification) of the name tree at `node`.
fn walk_name_tree<'a>(node: &Dict<'a>, out: &mut Vec<(String, Dict<'a>)>, depth: usize) {
    if depth > MAX_TREE_DEPTH || out.len() >= MAX_TREE_ENTRIES {
        return;
    }
    if let Some(names) = node.get::<Array>(b"Names") {
        let mut it = names.flex_iter();
        while out.len() < MAX_TREE_ENTRIES {
            let Some(key) = it.next::<PdfString>() else {
                break;
            };
            let Some(spec) = it.next::<Dict>() else {
                break;
            };
            out.push((pdf_text(key.as_bytes()), spec));
        }
    }
    if let Some(kids) = node.get::<Array>(b"Kids") {
        for kid in kids.iter::<Dict>() {
            walk_name_tree(&kid, out, depth + 1);
        }
    }
}

/// Whether `a` and `b` are the same file specification: the same indirect
/// object, or the same bytes where both are direct.
fn same(a: &Dict<'_>, b: &Dict<'_>) -> bool {
    match (a.obj_id(), b.obj_id()) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a == b,
        _ => false,
    }
}

/// Whether the file specification `spec` (listed under `key`, if in the
/// name tree) names `receipt.json`.
fn is_receipt(key: Option<&str>, spec: &Dict<'_>) -> bool {
    key == Some(RECEIPT_PDF_ATTACHMENT)
        || [&b"UF"[..], &b"F"[..]].iter().any(|k| {
            spec.get::<PdfString>(k)
                .is_some_and(|s| pdf_text(s.as_bytes()) == RECEIPT_PDF_ATTACHMENT)
        })
}

/// The bytes of the `receipt.json` attachment of the PDF `bytes`: the one
/// file specification named so in the document's `/EmbeddedFiles` (or its
/// `/AF`), which must be both attached and listed in the catalog's `/AF`.
pub fn extract_receipt(bytes: &[u8]) -> Result<Vec<u8>, PdfReceiptError> {
    if !is_pdf(bytes) {
        return Err(PdfReceiptError::NotPdf(
            "it does not start with %PDF-".into(),
        ));
    }
    if bytes.len() > MAX_RECEIPT_PDF_BYTES {
        return Err(PdfReceiptError::NotPdf(format!(
            "{} bytes, more than the {MAX_RECEIPT_PDF_BYTES} a receipt PDF may have",
            bytes.len()
        )));
    }
    let pdf = Pdf::new(bytes.to_vec())
        .map_err(|e| PdfReceiptError::NotPdf(format!("{e:?}").to_lowercase()))?;
    let xref = pdf.xref();
    let catalog: Dict = xref
        .get(xref.root_id())
        .ok_or_else(|| PdfReceiptError::NotPdf("it has no document catalog".into()))?;
    let mut named = Vec::new();
    if let Some(tree) = catalog
        .get::<Dict>(b"Names")
        .and_then(|n| n.get::<Dict>(b"EmbeddedFiles"))
    {
        walk_name_tree(&tree, &mut named, 0);
    }
    let associated: Vec<Dict> = catalog
        .get::<Array>(b"AF")
        .map(|a| a.iter::<Dict>().take(MAX_TREE_ENTRIES).collect())
        .unwrap_or_default();
    let mut receipts: Vec<&Dict> = Vec::new();
    let candidates = named
        .iter()
        .map(|(key, spec)| (Some(key.as_str()), spec))
        .chain(associated.iter().map(|spec| (None, spec)));
    for (key, spec) in candidates {
        if is_receipt(key, spec) && !receipts.iter().any(|r| same(r, spec)) {
            receipts.push(spec);
        }
    }
    if receipts.len() > 1 {
        return Err(PdfReceiptError::TwoAttachments(receipts.len()));
    }
    let spec = match receipts.first() {
        Some(spec) if named.iter().any(|(_, n)| same(n, spec)) => *spec,
        _ => return Err(PdfReceiptError::NoAttachment),
    };
    if !associated.iter().any(|a| same(a, spec)) {
        return Err(PdfReceiptError::NotAssociated);
    }
    let stream = spec
        .get::<Dict>(b"EF")
        .and_then(|ef| ef.get::<Stream>(b"UF").or_else(|| ef.get::<Stream>(b"F")))
        .ok_or_else(|| PdfReceiptError::Unreadable("it has no embedded file stream".into()))?;
    let stored = stream.raw_data().len();
    if stored > MAX_RECEIPT_ATTACHMENT_BYTES {
        return Err(PdfReceiptError::Unreadable(format!(
            "{stored} bytes stored, more than {MAX_RECEIPT_ATTACHMENT_BYTES}"
        )));
    }
    let data = stream
        .decoded_data()
        .map_err(|e| PdfReceiptError::Unreadable(format!("{e:?}").to_lowercase()))?;
    if data.len() > MAX_RECEIPT_ATTACHMENT_BYTES {
        return Err(PdfReceiptError::Unreadable(format!(
            "{} bytes decoded, more than {MAX_RECEIPT_ATTACHMENT_BYTES}",
            data.len()
        )));
    }
    Ok(data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use krilla::configure::{Archival, ConfigurationBuilder, PdfVersion};
    use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
    use krilla::metadata::{DateTime, Metadata};
    use krilla::{Document, SerializeSettings};

    const JSON: &[u8] = br#"{"schemaVersion":"sealstream.receipt.v1"}"#;

    fn file(path: &str, data: &[u8]) -> EmbeddedFile {
        EmbeddedFile {
            path: path.into(),
            mime_type: Some(MimeType::new("application/json").unwrap()),
            description: Some("test".into()),
            association_kind: AssociationKind::Source,
            data: data.to_vec().into(),
            modification_date: Some(DateTime::new(2026)),
            compress: Some(false),
            location: None,
        }
    }

    /// A PDF/A-3 document with `files` attached.
    fn pdf(files: &[(&str, &[u8])]) -> Vec<u8> {
        let configuration = ConfigurationBuilder::new()
            .with_version(PdfVersion::Pdf17)
            .with_archival_validator(Archival::A3_B)
            .finish()
            .unwrap();
        let mut document = Document::new_with(SerializeSettings {
            configuration,
            ..Default::default()
        });
        document.set_metadata(Metadata::new().creation_date(DateTime::new(2026)));
        for (path, data) in files {
            document.embed_file(file(path, data)).unwrap();
        }
        document.finish().unwrap()
    }

    /// `bytes` with `from` replaced by `to` once (same length).
    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .unwrap_or_else(|| panic!("{} not in the PDF", String::from_utf8_lossy(from)));
        let mut out = bytes.to_vec();
        out[at..at + from.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn the_one_associated_attachment_is_read() {
        let bytes = pdf(&[("notes.txt", b"hello"), ("receipt.json", JSON)]);
        assert_eq!(extract_receipt(&bytes).unwrap(), JSON);
    }

    #[test]
    fn no_attachment_is_not_a_receipt_pdf() {
        let e = extract_receipt(&pdf(&[])).unwrap_err();
        assert_eq!(e, PdfReceiptError::NoAttachment);
        assert!(!e.is_integrity());
        let e = extract_receipt(&pdf(&[("other.json", JSON)])).unwrap_err();
        assert_eq!(e, PdfReceiptError::NoAttachment);
        let e = extract_receipt(b"{\"schemaVersion\":1}").unwrap_err();
        assert!(matches!(e, PdfReceiptError::NotPdf(_)), "{e}");
        let e = extract_receipt(b"%PDF-1.7\n garbage").unwrap_err();
        assert!(matches!(e, PdfReceiptError::NotPdf(_)), "{e}");
    }

    #[test]
    fn two_receipts_are_refused() {
        // krilla keeps each path once: the second file's name is changed
        // to receipt.json in the bytes (same length), as a forger would.
        let bytes = pdf(&[("receipt.json", JSON), ("receipt.jsoX", b"{}")]);
        let bytes = replace(&bytes, b"/F(receipt.jsoX)", b"/F(receipt.json)");
        let e = extract_receipt(&bytes).unwrap_err();
        assert_eq!(e, PdfReceiptError::TwoAttachments(2));
        assert!(e.is_integrity());
    }

    #[test]
    fn an_attachment_not_in_af_is_refused() {
        let bytes = pdf(&[("receipt.json", JSON)]);
        // The catalog's /AF renamed to a key nobody reads (same length).
        let bytes = replace(&bytes, b"/AF[", b"/XF[");
        let e = extract_receipt(&bytes).unwrap_err();
        assert_eq!(e, PdfReceiptError::NotAssociated);
        assert!(e.is_integrity());
    }

    #[test]
    fn utf16_names_are_read() {
        assert_eq!(pdf_text(b"\xFE\xFF\x00r\x00x"), "rx");
        assert_eq!(pdf_text(b"receipt.json"), "receipt.json");
    }
}
