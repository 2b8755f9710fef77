//! A certificate's validity period, read from its DER.
//!
//! A few lines of DER walking rather than an X.509 crate: only `notBefore`
//! and `notAfter` are needed (renewal, the expiry metric), and a full
//! parser would cost the static binary hundreds of KB.
//!
//! It must not judge a certificate: rustls verifies, this only reads dates.

use std::time::{Duration, SystemTime};

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (digits, after) = rest.split_at(octets);
        rest = after;
        digits
            .iter()
            .fold(0usize, |n, &d| (n << 8) | usize::from(d))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

/// The `notAfter` of a DER certificate as Unix seconds (the expiry gauge
/// of `/metrics`); `None` when it is not one.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, after) = validity(der)?;
    let secs = match after.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(before_1970) => -(before_1970.duration().as_secs() as i64),
    };
    Some(secs)
}

/// `notBefore` and `notAfter` of a DER certificate; `None` when it is not
/// one.
pub fn validity(der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    // [0] version (optional), serial, signature algorithm, issuer.
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        rest = element(rest)?.2;
    }
    rest = element(rest)?.2;
    rest = element(rest)?.2;
    let (SEQUENCE, period, _) = element(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = element(period)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = element(rest)?;
    Some((not_before, time(tag, not_after)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u32>().ok();
    let days = days_from_civil(year, field(0)?, field(2)?)?;
    let secs = u64::from(field(4)?) * 3600 + u64::from(field(6)?) * 60 + u64::from(field(8)?);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); `None` before 1970.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> Option<u64> {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rcgen_certificate_s_dates_are_read() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 3, 1);
        params.not_after = rcgen::date_time_ymd(2051, 12, 31);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (from, to) = validity(cert.der()).unwrap();
        let day = |y, m, d| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(days_from_civil(y, m, d).unwrap() * 86_400)
        };
        assert_eq!(from, day(2026, 3, 1), "a UTCTime");
        assert_eq!(to, day(2051, 12, 31), "a GeneralizedTime after 2049");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(validity(b"").is_none());
        assert!(validity(&[0x30, 0x82, 0xff]).is_none());
        assert!(validity(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_none());
    }

    #[test]
    fn days_count_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(1969, 12, 31), None);
    }
}

#[cfg(test)]
mod not_after_tests {
    use super::*;

    fn cert_valid_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_not_after_in_both_time_forms() {
        // Before 2050 X.509 writes UTCTime, from 2050 GeneralizedTime.
        assert_eq!(
            not_after(&cert_valid_until(2030, 1, 2)),
            Some(1_893_542_400)
        );
        assert_eq!(
            not_after(&cert_valid_until(2051, 3, 1)),
            Some(2_561_241_600)
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        let cert = cert_valid_until(2030, 1, 2);
        assert_eq!(not_after(&cert[..cert.len() / 2]), None);
    }
}
