//! Item and point names: validation and the point naming rule (UTC creation time, sortable).

use super::{Result, VaultError};

/// 1–64 characters of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn check_item(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadItemName(name.into()))
    }
}

/// `YYYY-MM-DDTHH-MM-SSZ` with an optional `-N` suffix.
pub fn check_point(name: &str) -> Result<()> {
    let bad = || VaultError::BadPointName(name.into());
    let (stamp, suffix) = match name.get(20..) {
        Some(rest) if !rest.is_empty() => (&name[..20], Some(rest)),
        _ => (name, None),
    };
    let shape = b"dddd-dd-ddTdd-dd-ddZ";
    if stamp.len() != shape.len() {
        return Err(bad());
    }
    for (c, s) in stamp.bytes().zip(shape.iter()) {
        let ok = if *s == b'd' {
            c.is_ascii_digit()
        } else {
            c == *s
        };
        if !ok {
            return Err(bad());
        }
    }
    if let Some(s) = suffix {
        let digits = s.strip_prefix('-').ok_or_else(bad)?;
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    Ok(())
}

/// Name for a point created at `created_ns`, avoiding the names in `taken`.
pub fn point_name(created_ns: i64, taken: &[String]) -> String {
    let ts =
        jiff::Timestamp::from_nanosecond(created_ns as i128).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let base = ts.strftime("%Y-%m-%dT%H-%M-%SZ").to_string();
    if !taken.contains(&base) {
        return base;
    }
    (1..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !taken.contains(c))
        .expect("an unused suffix exists")
}

/// RFC 3339 form of a timestamp in ns, for JSON: `2026-11-23T23:10:05.5Z`.
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ns}ns"))
}

/// Human form of a timestamp in ns: `2026-11-23 23:10:05 UTC`.
pub fn display_time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| format!("{ns}ns"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_names() {
        for good in ["web01", "a", "photos.2026", "x_y-z", &"a".repeat(64)] {
            assert!(check_item(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "sp ace",
            "ü",
            &"a".repeat(65),
            "..",
            "a\nb",
        ] {
            assert!(check_item(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn point_names() {
        for good in [
            "2026-11-23T23-10-05Z",
            "2026-11-23T23-10-05Z-1",
            "2026-11-23T23-10-05Z-12",
        ] {
            assert!(check_point(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "latest2",
            "2026-11-23T23:10:05Z",
            "2026-11-23T23-10-05Z-",
            "2026-11-23T23-10-05Z1",
            "../x",
        ] {
            assert!(check_point(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_sort_and_collide_with_suffixes() {
        let t = 1_795_475_405_000_000_000; // 2026-11-23T23:10:05Z
        let a = point_name(t, &[]);
        assert_eq!(a, "2026-11-23T23-10-05Z");
        let b = point_name(t, std::slice::from_ref(&a));
        assert_eq!(b, "2026-11-23T23-10-05Z-1");
        assert_eq!(point_name(t, &[a.clone(), b]), "2026-11-23T23-10-05Z-2");
        assert!(check_point(&a).is_ok());
        assert!(point_name(t + 1_000_000_000, &[]) > a);
    }
}
