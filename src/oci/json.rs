//! Canonical JSON: every config, manifest and index shipit writes goes through here, so the
//! same value always gives the same bytes (sorted keys, no insignificant whitespace). oci-spec's
//! HashMaps make plain `serde_json::to_vec` output vary from run to run.

use serde::Serialize;

/// Serialises `value` to canonical JSON bytes (OLPC canonical form: sorted keys, compact).
pub fn canonical<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sorted_and_stable() {
        let mut m = HashMap::new();
        for k in ["b", "a", "d", "c", "e"] {
            m.insert(k.to_string(), 1);
        }
        assert_eq!(
            String::from_utf8(canonical(&m).unwrap()).unwrap(),
            r#"{"a":1,"b":1,"c":1,"d":1,"e":1}"#
        );
    }
}
