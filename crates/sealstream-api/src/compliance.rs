//! Compliance presets (issue 21): what a listing declares about who may buy
//! and what the data is — the buyer jurisdictions it sells to, the data
//! classes it holds, a retention notice and, optionally, an attestation the
//! buyer must accept — and what a buyer states when ordering (jurisdiction,
//! purpose, acceptance). An order from a jurisdiction the preset does not
//! allow, or without accepting its attestation, is refused with the reason;
//! an accepted one records the preset, its hash and the statement in the
//! order and in its license receipt.
//!
//! The preset's hash is `0x` + SHA-256 of `sealstream.compliance-preset.v1\n`
//! followed by the RFC 8785 form of the normalised preset (jurisdictions and
//! data classes sorted, without repeats), so that two listings with the same
//! terms have the same hash and a receipt names exactly the terms accepted.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::errors::FieldError;
use sealstream_core::json::{canonical, Map, Value};

/// What the preset's hash covers first.
pub const PRESET_TAG: &str = "sealstream.compliance-preset.v1";

/// The data classes a preset may declare.
pub const DATA_CLASSES: [&str; 9] = [
    "personal-data",
    "location",
    "health",
    "biometric",
    "imagery",
    "audio",
    "telemetry",
    "financial",
    "none-of-these",
];

/// The member states of the European Union (`EU` in a preset allows each).
pub const EU: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];
/// The EEA beyond the EU (`EEA` in a preset allows these and the EU).
pub const EEA_EXTRA: [&str; 3] = ["IS", "LI", "NO"];

/// Most jurisdictions in a preset.
pub const MAX_JURISDICTIONS: usize = 64;
/// Longest retention notice.
pub const MAX_RETENTION: usize = 1_000;
/// Longest attestation text.
pub const MAX_ATTESTATION: usize = 4_000;
/// Longest stated purpose.
pub const MAX_PURPOSE: usize = 500;

/// A listing's compliance preset, as given and as shown.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompliancePreset {
    /// Where buyers may be: ISO 3166-1 alpha-2 codes (`DE`, `CH`), or `EU`
    /// or `EEA` for all their members; 1 to 64.
    pub jurisdictions: Vec<String>,
    /// What the data holds: among `personal-data`, `location`, `health`,
    /// `biometric`, `imagery`, `audio`, `telemetry`, `financial`,
    /// `none-of-these`; at least one.
    pub data_classes: Vec<String>,
    /// How long buyers may keep the data, and what then (1 to 1,000
    /// characters).
    pub retention: String,
    /// A text the buyer must accept when ordering (up to 4,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
}

/// Whether `code` is two ASCII capital letters.
fn is_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

fn text_len(text: &str, field: &str, max: usize) -> Result<(), FieldError> {
    let n = text.chars().count();
    if text.trim().is_empty() || n > max {
        return Err(FieldError::new(
            field,
            format!("expected 1 to {max} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(field, "control characters are not allowed"));
    }
    Ok(())
}

impl CompliancePreset {
    /// Checks a preset as a request gives it (fields under `prefix`, e.g.
    /// `compliance`) and normalises it: codes in capitals, lists sorted
    /// without repeats.
    pub fn checked(mut self, prefix: &str) -> Result<CompliancePreset, FieldError> {
        let at = |f: &str| format!("{prefix}.{f}");
        let mut codes: Vec<String> = self
            .jurisdictions
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .collect();
        codes.sort();
        codes.dedup();
        if codes.is_empty() || codes.len() > MAX_JURISDICTIONS {
            return Err(FieldError::new(
                at("jurisdictions"),
                format!("expected 1 to {MAX_JURISDICTIONS} jurisdictions"),
            ));
        }
        if let Some(bad) = codes.iter().find(|c| !is_country(c) && c.as_str() != "EEA") {
            return Err(FieldError::new(
                at("jurisdictions"),
                format!("{bad:?} is not an ISO 3166-1 alpha-2 code, EU or EEA"),
            ));
        }
        let mut classes: Vec<String> = self
            .data_classes
            .iter()
            .map(|c| c.trim().to_string())
            .collect();
        classes.sort();
        classes.dedup();
        if classes.is_empty() {
            return Err(FieldError::new(
                at("dataClasses"),
                "expected at least one data class",
            ));
        }
        if let Some(bad) = classes.iter().find(|c| !DATA_CLASSES.contains(&c.as_str())) {
            return Err(FieldError::new(
                at("dataClasses"),
                format!("{bad:?} is not one of {}", DATA_CLASSES.join(", ")),
            ));
        }
        if classes.len() > 1 && classes.iter().any(|c| c == "none-of-these") {
            return Err(FieldError::new(
                at("dataClasses"),
                "none-of-these excludes the other classes",
            ));
        }
        text_len(&self.retention, &at("retention"), MAX_RETENTION)?;
        if let Some(a) = &self.attestation {
            text_len(a, &at("attestation"), MAX_ATTESTATION)?;
        }
        self.jurisdictions = codes;
        self.data_classes = classes;
        Ok(self)
    }

    /// The preset as canonical JSON (the hashed form).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "jurisdictions".into(),
            Value::Array(
                self.jurisdictions
                    .iter()
                    .map(|c| c.as_str().into())
                    .collect(),
            ),
        );
        m.insert(
            "dataClasses".into(),
            Value::Array(
                self.data_classes
                    .iter()
                    .map(|c| c.as_str().into())
                    .collect(),
            ),
        );
        m.insert("retention".into(), self.retention.as_str().into());
        m.insert(
            "attestation".into(),
            self.attestation.as_deref().map_or(Value::Null, Value::from),
        );
        Value::Object(m)
    }

    /// `0x` + SHA-256 of [`PRESET_TAG`], a newline and the RFC 8785 form of
    /// [`CompliancePreset::to_value`].
    pub fn hash(&self) -> String {
        let canonical = canonical::rfc8785(&self.to_value()).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(PRESET_TAG.as_bytes());
        h.update(b"\n");
        h.update(canonical.as_bytes());
        format!("0x{}", hex::encode(h.finalize()))
    }

    /// Whether a buyer in `jurisdiction` (an ISO 3166-1 alpha-2 code) may
    /// buy: it is listed, or it is a member of a listed `EU` or `EEA`.
    pub fn allows(&self, jurisdiction: &str) -> bool {
        let listed = |c: &str| self.jurisdictions.iter().any(|j| j == c);
        listed(jurisdiction)
            || (listed("EU") || listed("EEA")) && EU.contains(&jurisdiction)
            || listed("EEA") && EEA_EXTRA.contains(&jurisdiction)
    }

    /// Reads a preset from a stored or signed JSON value (the form of
    /// [`CompliancePreset::to_value`]), checked.
    pub fn from_value(value: &Value, prefix: &str) -> Result<CompliancePreset, FieldError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::new(prefix, "expected an object"))?;
        if let Some(k) = obj.keys().find(|k| {
            !["jurisdictions", "dataClasses", "retention", "attestation"].contains(&k.as_str())
        }) {
            return Err(FieldError::new(format!("{prefix}.{k}"), "unknown field"));
        }
        let strings = |key: &str| -> Result<Vec<String>, FieldError> {
            value
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| FieldError::new(format!("{prefix}.{key}"), "expected an array"))?
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        FieldError::new(format!("{prefix}.{key}"), "expected strings")
                    })
                })
                .collect()
        };
        let preset = CompliancePreset {
            jurisdictions: strings("jurisdictions")?,
            data_classes: strings("dataClasses")?,
            retention: value
                .get("retention")
                .and_then(Value::as_str)
                .ok_or_else(|| FieldError::new(format!("{prefix}.retention"), "expected a string"))?
                .to_string(),
            attestation: match value.get("attestation") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(FieldError::new(
                        format!("{prefix}.attestation"),
                        "expected a string or null",
                    ))
                }
            },
        };
        let checked = preset.clone().checked(prefix)?;
        if checked != preset {
            return Err(FieldError::new(
                prefix,
                "not in normal form (codes in capitals, lists sorted without repeats)",
            ));
        }
        Ok(checked)
    }
}

/// What a buyer states when ordering a listing that has a preset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statement {
    /// Where the buyer is (ISO 3166-1 alpha-2).
    pub jurisdiction: Option<String>,
    /// What the data is for.
    pub purpose: Option<String>,
    /// Whether the buyer accepts the preset's attestation.
    pub accept_attestation: bool,
}

/// The compliance record of an order and its receipt: the preset accepted,
/// its hash, and the buyer's statement.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Accepted {
    /// The listing's preset when ordered.
    pub preset: CompliancePreset,
    /// Its hash ([`CompliancePreset::hash`]).
    pub preset_hash: String,
    /// The buyer's jurisdiction.
    pub jurisdiction: String,
    /// The buyer's purpose.
    pub purpose: String,
    /// Whether the buyer accepted an attestation (`false` when the preset
    /// has none).
    pub attestation_accepted: bool,
}

impl Accepted {
    /// Checks `statement` against `preset`: a refusal names the field
    /// (`jurisdiction`, `purpose`, `acceptAttestation`) and says why.
    pub fn check(preset: &CompliancePreset, statement: &Statement) -> Result<Accepted, FieldError> {
        let jurisdiction = statement
            .jurisdiction
            .as_deref()
            .map(|j| j.trim().to_ascii_uppercase())
            .ok_or_else(|| {
                FieldError::new(
                    "jurisdiction",
                    "required: the listing sells only to some jurisdictions (state yours as an ISO 3166-1 alpha-2 code)",
                )
            })?;
        if !is_country(&jurisdiction) || jurisdiction == "EU" {
            return Err(FieldError::new(
                "jurisdiction",
                "expected a country's ISO 3166-1 alpha-2 code such as DE",
            ));
        }
        if !preset.allows(&jurisdiction) {
            return Err(FieldError::new(
                "jurisdiction",
                format!(
                    "the listing does not sell to {jurisdiction}: it sells to {}",
                    preset.jurisdictions.join(", ")
                ),
            ));
        }
        let purpose = statement.purpose.clone().unwrap_or_default();
        text_len(&purpose, "purpose", MAX_PURPOSE).map_err(|e| {
            FieldError::new(
                "purpose",
                format!("required by the listing's compliance terms: {}", e.message),
            )
        })?;
        if preset.attestation.is_some() && !statement.accept_attestation {
            return Err(FieldError::new(
                "acceptAttestation",
                "the listing requires accepting its attestation (acceptAttestation: true)",
            ));
        }
        Ok(Accepted {
            preset_hash: preset.hash(),
            preset: preset.clone(),
            jurisdiction,
            purpose: purpose.trim().to_string(),
            attestation_accepted: preset.attestation.is_some(),
        })
    }

    /// Wire JSON: `{preset, presetHash, jurisdiction, purpose,
    /// attestationAccepted}`.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("preset".into(), self.preset.to_value());
        m.insert("presetHash".into(), self.preset_hash.as_str().into());
        m.insert("jurisdiction".into(), self.jurisdiction.as_str().into());
        m.insert("purpose".into(), self.purpose.as_str().into());
        m.insert(
            "attestationAccepted".into(),
            self.attestation_accepted.into(),
        );
        Value::Object(m)
    }

    /// Reads the record strictly (at `prefix`): the hash must be the
    /// preset's, the jurisdiction allowed by it.
    pub fn from_value(value: &Value, prefix: &str) -> Result<Accepted, FieldError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::new(prefix, "expected an object"))?;
        let known = [
            "preset",
            "presetHash",
            "jurisdiction",
            "purpose",
            "attestationAccepted",
        ];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(FieldError::new(format!("{prefix}.{k}"), "unknown field"));
        }
        let text = |key: &str| -> Result<String, FieldError> {
            value
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| FieldError::new(format!("{prefix}.{key}"), "expected a string"))
        };
        let preset = CompliancePreset::from_value(
            value
                .get("preset")
                .ok_or_else(|| FieldError::new(format!("{prefix}.preset"), "required"))?,
            &format!("{prefix}.preset"),
        )?;
        let accepted = Accepted {
            preset_hash: text("presetHash")?,
            jurisdiction: text("jurisdiction")?,
            purpose: text("purpose")?,
            attestation_accepted: value
                .get("attestationAccepted")
                .and_then(Value::as_bool)
                .ok_or_else(|| {
                    FieldError::new(
                        format!("{prefix}.attestationAccepted"),
                        "expected a boolean",
                    )
                })?,
            preset,
        };
        if accepted.preset_hash != accepted.preset.hash() {
            return Err(FieldError::new(
                format!("{prefix}.presetHash"),
                "not the hash of the preset",
            ));
        }
        if !accepted.preset.allows(&accepted.jurisdiction) {
            return Err(FieldError::new(
                format!("{prefix}.jurisdiction"),
                "not a jurisdiction the preset allows",
            ));
        }
        if accepted.attestation_accepted != accepted.preset.attestation.is_some() {
            return Err(FieldError::new(
                format!("{prefix}.attestationAccepted"),
                "true exactly when the preset has an attestation",
            ));
        }
        text_len(&accepted.purpose, &format!("{prefix}.purpose"), MAX_PURPOSE)?;
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset() -> CompliancePreset {
        CompliancePreset {
            jurisdictions: vec!["ch".into(), "EU".into(), "CH".into()],
            data_classes: vec!["location".into(), "personal-data".into()],
            retention: "Delete within 12 months.".into(),
            attestation: Some("I will not re-identify people.".into()),
        }
        .checked("compliance")
        .unwrap()
    }

    #[test]
    fn presets_normalise_and_hash_the_same_terms_alike() {
        let p = preset();
        assert_eq!(p.jurisdictions, ["CH", "EU"]);
        let mut q = p.clone();
        q.jurisdictions.reverse();
        assert_eq!(q.checked("c").unwrap().hash(), p.hash());
        assert!(p.hash().starts_with("0x") && p.hash().len() == 66);
        let mut other = p.clone();
        other.retention.push('!');
        assert_ne!(other.hash(), p.hash());
        assert_eq!(CompliancePreset::from_value(&p.to_value(), "c").unwrap(), p);
    }

    #[test]
    fn statements_are_checked_with_reasons() {
        let p = preset();
        let ok = |j: &str| Statement {
            jurisdiction: Some(j.into()),
            purpose: Some("mapping research".into()),
            accept_attestation: true,
        };
        assert!(Accepted::check(&p, &ok("DE")).is_ok(), "an EU member");
        assert!(Accepted::check(&p, &ok("ch")).is_ok());
        let e = Accepted::check(&p, &ok("US")).unwrap_err();
        assert_eq!(e.field, "jurisdiction");
        assert!(
            e.message.contains("does not sell to US") && e.message.contains("CH, EU"),
            "{}",
            e.message
        );
        let mut s = ok("DE");
        s.accept_attestation = false;
        assert_eq!(
            Accepted::check(&p, &s).unwrap_err().field,
            "acceptAttestation"
        );
        s = ok("DE");
        s.purpose = None;
        assert_eq!(Accepted::check(&p, &s).unwrap_err().field, "purpose");
        let a = Accepted::check(&p, &ok("FR")).unwrap();
        assert_eq!(Accepted::from_value(&a.to_value(), "c").unwrap(), a);
        let mut forged = a.to_value();
        if let Value::Object(m) = &mut forged {
            m.insert("jurisdiction".into(), "US".into());
        }
        assert!(Accepted::from_value(&forged, "c").is_err());
    }

    #[test]
    fn bad_presets_name_the_field() {
        for (p, field) in [
            (
                CompliancePreset {
                    jurisdictions: vec![],
                    ..preset()
                },
                "compliance.jurisdictions",
            ),
            (
                CompliancePreset {
                    jurisdictions: vec!["Germany".into()],
                    ..preset()
                },
                "compliance.jurisdictions",
            ),
            (
                CompliancePreset {
                    data_classes: vec!["secrets".into()],
                    ..preset()
                },
                "compliance.dataClasses",
            ),
            (
                CompliancePreset {
                    retention: " ".into(),
                    ..preset()
                },
                "compliance.retention",
            ),
        ] {
            assert_eq!(p.checked("compliance").unwrap_err().field, field);
        }
        assert!(preset().allows("NL") && !preset().allows("NO"));
    }
}
