//! The price catalog: unit prices per provider and storage class.
//!
//! The shipped catalog ([`SHIPPED`], `src/cost/prices.toml`) is embedded in
//! the binary. Override files use the same layout and may give only some
//! fields: they merge over the shipped catalog entry by entry, field by field
//! ([`PriceCatalog::merge_toml`]). A class an override adds must give every
//! price field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CostError;

/// The price catalog shipped with tierfs (also installable as
/// `/usr/share/tierfs/prices.toml`).
pub const SHIPPED: &str = include_str!("prices.toml");

/// One storage class's unit prices, in US dollars.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassPrice {
    /// The units, as stated in the catalog.
    pub unit: String,
    /// USD per GB stored for a month (30 days).
    pub storage_per_gb_month: f64,
    /// USD per 1,000 PUT-class requests (uploads, multipart steps).
    pub put_per_1000: f64,
    /// USD per 1,000 GET-class requests (GET, ranged GET, HEAD).
    pub get_per_1000: f64,
    /// USD per 1,000 LIST requests.
    pub list_per_1000: f64,
    /// USD per 1,000 DELETE requests.
    pub delete_per_1000: f64,
    /// USD per GB downloaded.
    pub egress_per_gb: f64,
    /// USD per GB read back (infrequent-access and archive classes).
    pub retrieval_per_gb: f64,
    /// Egress free each month, as a multiple of the bytes stored (B2: 3).
    pub free_egress_multiple: f64,
    /// Minimum storage duration: deleting earlier bills the remaining days.
    pub min_storage_days: u32,
    /// How many bytes the provider's "GB" is (10^9 or 2^30).
    pub gb_bytes: u64,
    /// When this list price was known to be published (YYYY-MM-DD).
    pub as_of: String,
    /// The provider's pricing page.
    pub source: String,
    /// Anything else the reader should know.
    pub notes: Option<String>,
}

/// A provider: display name, default class and the classes' prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    /// Display name, e.g. "Amazon S3".
    pub name: String,
    /// The class used when neither the object nor the remote names one.
    pub default_class: String,
    /// Prices by class name (as the provider spells it).
    pub classes: BTreeMap<String, ClassPrice>,
}

impl Provider {
    /// The prices of `class` (matched case-insensitively), or of the default
    /// class when `class` is `None`. Returns the class name as catalogued.
    pub fn class(&self, class: Option<&str>) -> Option<(&str, &ClassPrice)> {
        let want = class.unwrap_or(&self.default_class);
        self.classes
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(want))
            .map(|(name, price)| (name.as_str(), price))
    }
}

/// All providers' prices, by provider id (`b2`, `aws-s3`, `gcs`, `azure`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PriceCatalog {
    /// Providers by id.
    pub providers: BTreeMap<String, Provider>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Option<String>,
    default_class: Option<String>,
    #[serde(default)]
    classes: BTreeMap<String, RawClass>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    unit: Option<String>,
    storage_per_gb_month: Option<f64>,
    put_per_1000: Option<f64>,
    get_per_1000: Option<f64>,
    list_per_1000: Option<f64>,
    delete_per_1000: Option<f64>,
    egress_per_gb: Option<f64>,
    retrieval_per_gb: Option<f64>,
    free_egress_multiple: Option<f64>,
    min_storage_days: Option<u32>,
    gb_bytes: Option<u64>,
    as_of: Option<String>,
    source: Option<String>,
    notes: Option<String>,
}

impl PriceCatalog {
    /// The shipped catalog.
    pub fn shipped() -> Result<PriceCatalog, CostError> {
        let mut catalog = PriceCatalog::default();
        catalog.merge_toml(SHIPPED, "the shipped price catalog")?;
        Ok(catalog)
    }

    /// Merges the prices in `text` (TOML; `origin` names it in errors) over
    /// this catalog, field by field.
    pub fn merge_toml(&mut self, text: &str, origin: &str) -> Result<(), CostError> {
        let raw: BTreeMap<String, RawProvider> =
            toml::from_str(text).map_err(|e| CostError::Prices {
                origin: origin.to_string(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?;
        let bad = |message: String| CostError::Prices {
            origin: origin.to_string(),
            message,
        };
        for (id, rp) in raw {
            let existing = self.providers.remove(&id);
            let mut provider = match (existing, &rp.name, &rp.default_class) {
                (Some(p), _, _) => p,
                (None, Some(name), Some(default_class)) => Provider {
                    name: name.clone(),
                    default_class: default_class.clone(),
                    classes: BTreeMap::new(),
                },
                (None, _, _) => {
                    return Err(bad(format!(
                        "new provider `{id}` needs `name` and `default_class`"
                    )));
                }
            };
            if let Some(name) = rp.name {
                provider.name = name;
            }
            if let Some(default_class) = rp.default_class {
                provider.default_class = default_class;
            }
            for (class, rc) in rp.classes {
                let key = provider
                    .classes
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(&class))
                    .cloned()
                    .unwrap_or(class);
                let merged = merge_class(provider.classes.remove(&key), rc)
                    .map_err(|field| bad(format!("`{id}.classes.{key}` needs `{field}`")))?;
                check_class(&merged).map_err(|m| bad(format!("`{id}.classes.{key}`: {m}")))?;
                provider.classes.insert(key, merged);
            }
            if provider.class(None).is_none() {
                return Err(bad(format!(
                    "provider `{id}`: default_class `{}` has no prices",
                    provider.default_class
                )));
            }
            self.providers.insert(id, provider);
        }
        Ok(())
    }
}

/// Overlays `raw` on `base` (or builds a new entry). Errs with the name of
/// a missing field.
fn merge_class(base: Option<ClassPrice>, raw: RawClass) -> Result<ClassPrice, &'static str> {
    macro_rules! pick {
        ($field:ident) => {
            match (raw.$field, &base) {
                (Some(v), _) => v,
                (None, Some(b)) => b.$field.clone(),
                (None, None) => return Err(stringify!($field)),
            }
        };
    }
    Ok(ClassPrice {
        unit: pick!(unit),
        storage_per_gb_month: pick!(storage_per_gb_month),
        put_per_1000: pick!(put_per_1000),
        get_per_1000: pick!(get_per_1000),
        list_per_1000: pick!(list_per_1000),
        delete_per_1000: pick!(delete_per_1000),
        egress_per_gb: pick!(egress_per_gb),
        retrieval_per_gb: pick!(retrieval_per_gb),
        free_egress_multiple: pick!(free_egress_multiple),
        min_storage_days: pick!(min_storage_days),
        gb_bytes: pick!(gb_bytes),
        as_of: pick!(as_of),
        source: pick!(source),
        notes: raw.notes.or(base.and_then(|b| b.notes)),
    })
}

fn check_class(c: &ClassPrice) -> Result<(), String> {
    let prices = [
        ("storage_per_gb_month", c.storage_per_gb_month),
        ("put_per_1000", c.put_per_1000),
        ("get_per_1000", c.get_per_1000),
        ("list_per_1000", c.list_per_1000),
        ("delete_per_1000", c.delete_per_1000),
        ("egress_per_gb", c.egress_per_gb),
        ("retrieval_per_gb", c.retrieval_per_gb),
        ("free_egress_multiple", c.free_egress_multiple),
    ];
    for (name, v) in prices {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("`{name}` = {v} is not a price (a number >= 0)"));
        }
    }
    if c.gb_bytes == 0 {
        return Err("`gb_bytes` must be > 0".into());
    }
    if c.as_of.is_empty() || c.source.is_empty() {
        return Err("`as_of` and `source` must say where the price comes from".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_covers_every_required_class() {
        let c = PriceCatalog::shipped().unwrap();
        let want: &[(&str, &[&str])] = &[
            ("b2", &["standard"]),
            (
                "aws-s3",
                &["STANDARD", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"],
            ),
            ("gcs", &["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"]),
            ("azure", &["Hot", "Cool", "Cold", "Archive"]),
        ];
        for (provider, classes) in want {
            let p = &c.providers[*provider];
            for class in *classes {
                let (_, price) = p.class(Some(class)).unwrap();
                assert!(price.source.starts_with("https://"), "{provider} {class}");
                assert!(price.as_of.len() == 10, "{provider} {class}");
                assert!(price.unit.contains("GB ="), "{provider} {class}");
            }
        }
        let b2 = c.providers["b2"].class(None).unwrap().1;
        assert_eq!(b2.free_egress_multiple, 3.0);
        assert_eq!(b2.gb_bytes, 1_000_000_000);
        let ia = c.providers["aws-s3"].class(Some("standard_ia")).unwrap().1;
        assert_eq!(ia.min_storage_days, 30);
    }

    #[test]
    fn overrides_merge_field_by_field() {
        let mut c = PriceCatalog::shipped().unwrap();
        c.merge_toml(
            "[b2.classes.standard]\nstorage_per_gb_month = 0.005\n",
            "test",
        )
        .unwrap();
        let b2 = c.providers["b2"].class(None).unwrap().1;
        assert_eq!(b2.storage_per_gb_month, 0.005);
        assert_eq!(b2.get_per_1000, 0.0004, "other fields are kept");
        let e = c
            .merge_toml("[new]\nname = \"x\"\ndefault_class = \"a\"\n[new.classes.a]\nstorage_per_gb_month = 1.0\n", "over.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("over.toml") && e.contains("needs `unit`"), "{e}");
        let e = c
            .merge_toml("[b2.classes.standard]\negress_per_gb = -1.0\n", "o")
            .unwrap_err()
            .to_string();
        assert!(e.contains("egress_per_gb"), "{e}");
        let e = c
            .merge_toml("[b2.classes.standard]\nstorage = 1.0\n", "o")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
