//! License receipts as PDF/A-3 documents (`GET /v1/orders/{id}/receipt?format=pdf`):
//! one A4 page that shows the receipt's facts to a person, and the signed
//! JSON receipt itself (v1 or v2, byte for byte as the server keeps it)
//! embedded as the associated file `receipt.json` (`/AFRelationship
//! /Source`, `application/json`). Only the attachment is signed: the page
//! is a rendering of it, and `sealstream receipt verify FILE.pdf` checks
//! the attachment ([`sealstream_api::receipts::pdf`]).
//!
//! The bytes are a function of the receipt alone: the document's dates are
//! the receipt's `issuedAt`, its document id is derived from the order id,
//! the producer and creator strings carry no version, and the font is the
//! vendored DejaVu Sans (`fonts/`, its licence beside it). krilla never
//! reads the clock or a random source, and is pinned (`=0.8.2`): a new
//! krilla or font may change the bytes of the same receipt.
//!
//! krilla checks PDF/A-3u conformance when the document is written (an
//! error instead of bytes otherwise). A character the font cannot draw
//! would break it (PDF/A forbids `.notdef` glyphs), so such characters are
//! shown as `?` on the page; the embedded JSON keeps the true text.

use std::sync::{Arc, OnceLock};

use krilla::configure::{Archival, ConfigurationBuilder, PdfVersion};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::Point;
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};
use skrifa::instance::{LocationRef, Size};
use skrifa::MetadataProvider;

use sealstream_api::receipts::pdf::{RECEIPT_PDF_ATTACHMENT, RECEIPT_PDF_MIME};
use sealstream_api::receipts::{LicenseReceipt, SignedDocument};
use sealstream_core::json::Value;

/// DejaVu Sans 2.37 (Debian `fonts-dejavu-core`), Bitstream Vera licence:
/// `fonts/DejaVuSans-LICENSE.txt`.
const FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
/// The document's producer and creator: no version, so that an upgrade of
/// sealstream alone does not change a receipt's bytes.
const PRODUCER: &str = "sealstream market";

/// A4, in points.
const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
/// Where values start (labels are left of it).
const VALUE_X: f32 = 150.0;
const TITLE_SIZE: f32 = 18.0;
const TEXT_SIZE: f32 = 9.5;
const LINE: f32 = 13.0;
/// The fraction of a line's width text is allowed to fill: shaping
/// (kerning) only ever narrows DejaVu text, this is slack on top.
const FILL: f32 = 0.98;

/// Why a receipt could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptPdfError {
    /// The stored receipt does not read as a v1 or v2 license receipt.
    #[error("not a license receipt: {0}")]
    NotAReceipt(String),
    /// krilla refused to write the document (a PDF/A-3 rule it checks, or
    /// a limit of the format).
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

/// The receipt `json` (`sealstream.receipt.v1` or `.v2`, as signed) as a
/// PDF/A-3u document with `json` attached as `receipt.json`. The same
/// `json` gives the same bytes.
pub fn render(json: &[u8]) -> Result<Vec<u8>, ReceiptPdfError> {
    let document =
        SignedDocument::parse(json).map_err(|e| ReceiptPdfError::NotAReceipt(e.to_string()))?;
    let receipt = match &document {
        SignedDocument::Receipt(signed) => signed.receipt.clone(),
        SignedDocument::ReceiptV2(v2) => v2
            .verify(None)
            .map_err(|e| ReceiptPdfError::NotAReceipt(e.to_string()))?
            .receipt
            .ok_or_else(|| {
                ReceiptPdfError::NotAReceipt("a disclosure, not a whole v2 receipt".into())
            })?,
        SignedDocument::Cutoff(_) => {
            return Err(ReceiptPdfError::NotAReceipt(
                "a subscription's cut-off notice".into(),
            ))
        }
    };
    let page = Page {
        receipt: &receipt,
        schema: document.schema(),
        signer: document.public_key().to_hex(),
    };
    match page.write(json, Glyphs::Font) {
        // A shaped glyph without a Unicode mapping (a rare combination the
        // character map alone does not predict): the page again in ASCII.
        Err(ReceiptPdfError::Pdf(_)) => page.write(json, Glyphs::Ascii),
        written => written,
    }
}

/// Which characters the page may draw.
#[derive(Clone, Copy)]
enum Glyphs {
    /// Those the font's character map has.
    Font,
    /// Printable ASCII only.
    Ascii,
}

/// One line of text placed on a page.
struct Line {
    x: f32,
    /// The baseline, from the top of the page.
    y: f32,
    size: f32,
    text: String,
}

struct Page<'a> {
    receipt: &'a LicenseReceipt,
    schema: &'static str,
    signer: String,
}

/// The vendored font, parsed once.
fn font() -> &'static Font {
    static FONT_CELL: OnceLock<Font> = OnceLock::new();
    FONT_CELL.get_or_init(|| Font::new(FONT.into(), 0).expect("the vendored font parses"))
}

/// Measures and filters text with the vendored font's tables.
struct Metrics<'a> {
    font: skrifa::FontRef<'a>,
    glyphs: Glyphs,
}

impl Metrics<'_> {
    fn new(glyphs: Glyphs) -> Metrics<'static> {
        Metrics {
            font: skrifa::FontRef::new(FONT).expect("the vendored font parses"),
            glyphs,
        }
    }

    /// `text` with every character the page cannot draw replaced by `?`
    /// (control and format characters too).
    fn drawable(&self, text: &str) -> String {
        let charmap = self.font.charmap();
        text.chars()
            .map(|c| {
                let ok = match self.glyphs {
                    Glyphs::Ascii => c.is_ascii_graphic() || c == ' ',
                    Glyphs::Font => {
                        !c.is_control()
                            && !is_invisible(c)
                            && charmap.map(c).is_some_and(|g| g.to_u32() != 0)
                    }
                };
                if ok {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// The width of `text` (drawable) at `size`, in points.
    fn width(&self, text: &str, size: f32) -> f32 {
        let charmap = self.font.charmap();
        let metrics = self
            .font
            .glyph_metrics(Size::new(size), LocationRef::default());
        text.chars()
            .map(|c| {
                charmap
                    .map(c)
                    .and_then(|g| metrics.advance_width(g))
                    .unwrap_or(size)
            })
            .sum()
    }

    /// `text` (drawable) broken into lines no wider than `width`: at
    /// spaces where it can, inside a word (a hex root, a DID) where a
    /// word alone is too wide.
    fn wrap(&self, text: &str, size: f32, width: f32) -> Vec<String> {
        let width = width * FILL;
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split(' ') {
            let joined = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if self.width(&joined, size) <= width {
                line = joined;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for c in word.chars() {
                line.push(c);
                if self.width(&line, size) > width && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, c.to_string()));
                }
            }
        }
        lines.push(line);
        lines
    }
}

/// Characters with no visible glyph that shaping may drop or fold into
/// a neighbour (zero-width spaces and joiners, bidi controls, variation
/// selectors): a PDF/A-3u glyph needs a Unicode mapping of its own.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFF}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The document date: the receipt's `issuedAt` (`YYYY-MM-DDTHH:MM:SS…Z`,
/// checked when the receipt was read).
fn date(issued_at: &str) -> DateTime {
    let n = |from: usize, to: usize| -> u16 {
        issued_at
            .get(from..to)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let byte = |from, to| u8::try_from(n(from, to)).unwrap_or(0);
    DateTime::new(n(0, 4))
        .month(byte(5, 7).max(1))
        .day(byte(8, 10).max(1))
        .hour(byte(11, 13))
        .minute(byte(14, 16))
        .second(byte(17, 19))
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

/// The license on the page: its text, or its JSON.
fn license_text(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(text) => text.clone(),
        other => sealstream_core::json::write::to_python_compact(other),
    }
}

impl Page<'_> {
    /// The facts shown, as (label, value) rows.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let r = self.receipt;
        let amount = match r.unit() {
            Some("native") => format!("{} in the chain's native coin", r.amount_display()),
            Some(unit) => format!("{} {unit}", r.amount_display()),
            None => r.amount_display(),
        };
        let mut rows = vec![
            ("Order", r.order_id.clone()),
            ("Listing", format!("{} ({})", r.listing_title, r.listing_id)),
            ("Dataset", r.dataset_id.clone()),
            ("Merkle root", r.dataset_root.clone()),
            ("Machine", r.machine_did.clone()),
            ("Topic", r.topic.clone()),
            (
                "Chunks",
                format!(
                    "{} chunk{} from index {}",
                    r.chunk_count,
                    if r.chunk_count == 1 { "" } else { "s" },
                    r.first_index
                ),
            ),
            ("Seller", r.seller_did.clone()),
            ("Buyer", r.buyer_did.clone()),
            ("Recipient", r.buyer_id.clone()),
            ("Buyer key", r.buyer_public_key_hex.clone()),
            ("Amount", amount),
            (
                "Base units",
                format!("{} ({} decimals)", r.amount, r.decimals),
            ),
            ("Payment", r.payment.to_string()),
            ("License", license_text(&r.license)),
            ("Ordered", r.ordered_at.clone()),
            ("Paid", r.paid_at.clone()),
            ("Issued", r.issued_at.clone()),
            ("Format", self.schema.to_string()),
            ("Signing key", format!("ed25519 {}", self.signer)),
        ];
        if let Some(c) = &r.compliance {
            let at = rows.len() - 5;
            rows.insert(
                at,
                (
                    "Compliance",
                    format!(
                        "preset {}; buyer's jurisdiction {}, purpose: {}; attestation {}",
                        c.preset_hash,
                        c.jurisdiction,
                        c.purpose,
                        if c.attestation_accepted {
                            "accepted"
                        } else {
                            "none"
                        }
                    ),
                ),
            );
        }
        rows
    }

    /// The lines of text on each page: the title, a row per fact (values
    /// wrapped to their column), the note on what is signed; a new page
    /// when one is full (a long license or title).
    fn layout(&self, metrics: &Metrics<'_>) -> Vec<Vec<Line>> {
        let mut pages = vec![Vec::new()];
        let mut y = MARGIN + TITLE_SIZE;
        let put = |pages: &mut Vec<Vec<Line>>, y: &mut f32, x: f32, size: f32, text: String| {
            if *y > PAGE_HEIGHT - MARGIN {
                pages.push(Vec::new());
                *y = MARGIN + TEXT_SIZE;
            }
            if let Some(page) = pages.last_mut() {
                page.push(Line {
                    x,
                    y: *y,
                    size,
                    text,
                });
            }
        };
        put(
            &mut pages,
            &mut y,
            MARGIN,
            TITLE_SIZE,
            "License receipt".into(),
        );
        y += LINE * 2.0;
        let value_width = PAGE_WIDTH - MARGIN - VALUE_X;
        for (label, value) in self.rows() {
            let text = metrics.drawable(&value);
            for (i, line) in metrics
                .wrap(&text, TEXT_SIZE, value_width)
                .into_iter()
                .enumerate()
            {
                if i == 0 {
                    // The label on the value's first line's page.
                    put(&mut pages, &mut y, MARGIN, TEXT_SIZE, label.into());
                }
                put(&mut pages, &mut y, VALUE_X, TEXT_SIZE, line);
                y += LINE;
            }
            y += LINE * 0.35;
        }
        y += LINE;
        let note = format!(
            "The signed receipt ({}) is attached to this PDF as {RECEIPT_PDF_ATTACHMENT}. Only the \
             attachment is signed: this page is a rendering of it. Verify it with: \
             sealstream receipt verify FILE.pdf --server-key KEY (KEY: the market's receipt key, \
             GET /v1/receipts/key).",
            self.schema
        );
        for line in metrics.wrap(&note, TEXT_SIZE, PAGE_WIDTH - 2.0 * MARGIN) {
            put(&mut pages, &mut y, MARGIN, TEXT_SIZE, line);
            y += LINE;
        }
        pages
    }

    fn write(&self, json: &[u8], glyphs: Glyphs) -> Result<Vec<u8>, ReceiptPdfError> {
        let r = self.receipt;
        let configuration = ConfigurationBuilder::new()
            .with_version(PdfVersion::Pdf17)
            .with_archival_validator(Archival::A3_U)
            .finish()
            .map_err(|e| ReceiptPdfError::Pdf(format!("configuration: {e:?}")))?;
        let mut document = Document::new_with(SerializeSettings {
            configuration,
            ..Default::default()
        });
        let when = date(&r.issued_at);
        let metrics = Metrics::new(glyphs);
        document.set_metadata(
            Metadata::new()
                .title(metrics.drawable(&format!("License receipt {}", r.order_id)))
                .language("en".into())
                .creator(PRODUCER.into())
                .producer(PRODUCER.into())
                .creation_date(when)
                .document_id(format!("sealstream-receipt:{}", r.order_id)),
        );
        for lines in self.layout(&metrics) {
            let mut page = document.start_page_with(
                PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
                    .ok_or_else(|| ReceiptPdfError::Pdf("page size".into()))?,
            );
            let mut surface = page.surface();
            for line in lines {
                surface.draw_text(
                    Point::from_xy(line.x, line.y),
                    font().clone(),
                    line.size,
                    &line.text,
                    false,
                    TextDirection::LeftToRight,
                );
            }
            surface.finish();
            page.finish();
        }
        document
            .embed_file(EmbeddedFile {
                path: RECEIPT_PDF_ATTACHMENT.into(),
                mime_type: Some(
                    MimeType::new(RECEIPT_PDF_MIME)
                        .ok_or_else(|| ReceiptPdfError::Pdf("MIME type".into()))?,
                ),
                description: Some(format!(
                    "The signed license receipt ({}) of order {}: check it with \
                     sealstream receipt verify",
                    self.schema,
                    metrics.drawable(&r.order_id)
                )),
                association_kind: AssociationKind::Source,
                data: Arc::new(json.to_vec()).into(),
                modification_date: Some(when),
                compress: Some(false),
                location: None,
            })
            .ok_or_else(|| ReceiptPdfError::Pdf("the receipt could not be attached".into()))?;
        document
            .finish()
            .map_err(|e| ReceiptPdfError::Pdf(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_the_font_lacks_become_question_marks() {
        let m = Metrics::new(Glyphs::Font);
        assert_eq!(m.drawable("Grüße €"), "Grüße €");
        assert_eq!(m.drawable("激光 scans\u{200B}\n"), "?? scans??");
        let ascii = Metrics::new(Glyphs::Ascii);
        assert_eq!(ascii.drawable("Grüße"), "Gr??e");
    }

    #[test]
    fn long_words_are_broken_to_fit() {
        let m = Metrics::new(Glyphs::Font);
        let root = format!("0x{}", "ab".repeat(32));
        let lines = m.wrap(&format!("root {root} end"), TEXT_SIZE, 200.0);
        assert!(lines.len() >= 3, "{lines:?}");
        assert_eq!(lines.concat().replace(' ', ""), format!("root{root}end"));
        for line in &lines {
            assert!(m.width(line, TEXT_SIZE) <= 200.0, "{line}");
        }
    }

    fn receipt(title: &str, license: Value) -> Vec<u8> {
        use sealstream_api::receipts::ReceiptPayment;
        let r = LicenseReceipt {
            order_id: "ord_1".into(),
            listing_id: "ls_1".into(),
            listing_title: title.into(),
            dataset_id: "ds_1".into(),
            dataset_root: format!("0x{}", "5a".repeat(32)),
            machine_did: "did:peaq:0x3d9141C95c9384e002528cf6AeE3b33a4C816DE1".into(),
            topic: "/sensor/imu".into(),
            first_index: 10,
            chunk_count: 1,
            seller_did: "did:peaq:0x9C5e5e3F2d1a0B8c7D6e5F4a3B2c1D0e9F8a7B6c".into(),
            buyer_did: "did:peaq:0x000000000000000000000000000000000000b0b0".into(),
            buyer_id: "buyer-7".into(),
            buyer_public_key_hex: "ad".repeat(32),
            amount: "120000".into(),
            decimals: 2,
            rail: sealstream_core::json::parse(
                br#"{"kind":"invoice","currency":"EUR","decimals":2}"#,
            )
            .unwrap(),
            payment: ReceiptPayment::Invoice {
                invoice_reference: "INV-2026-0042".into(),
                marked_by: "did:peaq:0x9C5e5e3F2d1a0B8c7D6e5F4a3B2c1D0e9F8a7B6c".into(),
            },
            license,
            ordered_at: "2026-01-02T03:04:05Z".into(),
            paid_at: "2026-01-03T03:04:05Z".into(),
            issued_at: "2026-01-03T03:04:06Z".into(),
            compliance: None,
        };
        let key = sealstream_core::keys::ReceiptSigningKey::from_bytes(&[7; 32]);
        r.sign(&key).unwrap().to_json_pretty().into_bytes()
    }

    fn pages(pdf: &[u8]) -> usize {
        pdf.windows(11).filter(|w| w == b"/Type/Page/").count()
    }

    #[test]
    fn any_title_renders_and_the_same_receipt_gives_the_same_bytes() {
        // CJK, emoji, right-to-left, combining marks, controls, joiners.
        for title in [
            "IMU, test track",
            "激光雷达 scans",
            "robot 🤖 data",
            "שלום مرحبا mixed",
            "e\u{301}\u{301}\u{301} a\u{200D}b \u{FE0F}\u{202E}x\t\u{7}",
        ] {
            let json = receipt(title, "CC BY-NC 4.0".into());
            let pdf = render(&json).unwrap_or_else(|e| panic!("{title}: {e}"));
            assert_eq!(render(&json).unwrap(), pdf, "{title}");
            assert!(pdf.starts_with(b"%PDF-1.7"));
            assert_eq!(
                sealstream_api::receipts::pdf::extract_receipt(&pdf).unwrap(),
                json
            );
            assert_eq!(pages(&pdf), 1, "{title}");
        }
    }

    #[test]
    fn a_long_license_continues_on_another_page() {
        let long = "Use for research only. ".repeat(400);
        let pdf = render(&receipt("IMU", long.as_str().into())).unwrap();
        assert!(pages(&pdf) >= 2, "{}", pages(&pdf));
    }

    #[test]
    fn only_whole_receipts_are_rendered() {
        assert!(matches!(
            render(b"{}"),
            Err(ReceiptPdfError::NotAReceipt(_))
        ));
        assert!(matches!(
            render(b"%PDF-1.7"),
            Err(ReceiptPdfError::NotAReceipt(_))
        ));
    }

    /// docs/examples/receipt.pdf is the rendering of docs/examples/receipt.json
    /// (the same bytes on every machine: a krilla or font upgrade shows here).
    #[test]
    fn the_documented_example_is_rendered_byte_for_byte() {
        let json = include_bytes!("../../../../docs/examples/receipt.json");
        let pdf = render(json).unwrap();
        let example = include_bytes!("../../../../docs/examples/receipt.pdf");
        if pdf != example {
            let new = std::env::temp_dir().join("receipt.pdf.new");
            std::fs::write(&new, &pdf).unwrap();
            panic!(
                "docs/examples/receipt.pdf differs from the rendering of receipt.json; if that \
                 is intended (a krilla or font upgrade): cp {} docs/examples/receipt.pdf",
                new.display()
            );
        }
    }

    #[test]
    fn the_date_is_the_receipts() {
        let d = date("2026-01-03T03:04:06Z");
        assert_eq!(
            format!("{d:?}"),
            format!(
                "{:?}",
                DateTime::new(2026)
                    .month(1)
                    .day(3)
                    .hour(3)
                    .minute(4)
                    .second(6)
                    .utc_offset_hour(0)
                    .utc_offset_minute(0)
            )
        );
    }
}
