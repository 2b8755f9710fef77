//! Where `--redis URL` points: one Redis at a fixed address
//! (`redis://`, `rediss://`), or the master that a set of Sentinels
//! name (`redis+sentinel://`, `rediss+sentinel://`). Pure: parsing only;
//! [`crate::broker::redis::link`] does the asking and connecting.
//!
//! The sentinel form is
//! `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB]`;
//! `PASSWORD` and `DB` are the master's (the sentinels are asked without a
//! password), and `rediss+sentinel://` speaks TLS to the sentinels and to
//! the master alike.

use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo};

/// What `--redis URL` names.
#[derive(Debug, Clone)]
pub enum Target {
    /// One Redis at a fixed address.
    Direct(ConnectionInfo),
    /// The master the sentinels name.
    Sentinel(Sentinels),
}

/// A master known by name to a set of sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinels {
    /// The sentinels' addresses, asked in this order.
    pub addrs: Vec<(String, u16)>,
    /// The master's name in the sentinels' configuration.
    pub master: String,
    /// The master's password, if it has one.
    pub password: Option<String>,
    /// The master's database.
    pub db: i64,
    /// TLS to the sentinels and the master.
    pub tls: bool,
}

impl Sentinels {
    /// How to log in to the master once its address is known.
    pub fn redis_info(&self) -> RedisConnectionInfo {
        RedisConnectionInfo {
            db: self.db,
            username: None,
            password: self.password.clone(),
            protocol: ProtocolVersion::RESP2,
        }
    }
}

impl Target {
    /// Parses `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Target, String> {
        let sentinel = url
            .strip_prefix("redis+sentinel://")
            .map(|rest| (rest, false))
            .or_else(|| url.strip_prefix("rediss+sentinel://").map(|r| (r, true)));
        match sentinel {
            Some((rest, tls)) => parse_sentinels(rest, tls).map(Target::Sentinel),
            None => url
                .into_connection_info()
                .map(Target::Direct)
                .map_err(|e| e.to_string()),
        }
    }

    /// Whether connections speak TLS.
    pub fn tls(&self) -> bool {
        match self {
            Target::Direct(info) => matches!(info.addr, redis::ConnectionAddr::TcpTls { .. }),
            Target::Sentinel(s) => s.tls,
        }
    }
}

fn parse_sentinels(rest: &str, tls: bool) -> Result<Sentinels, String> {
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let password = match auth {
        None => None,
        Some(auth) => {
            let Some(password) = auth.strip_prefix(':') else {
                return Err("the password goes as `:PASSWORD@` (no user name)".into());
            };
            Some(percent_decode(password)?).filter(|p| !p.is_empty())
        }
    };
    let mut path = rest.split('/');
    let hosts = path.next().unwrap_or_default();
    let master = path
        .next()
        .filter(|m| !m.is_empty())
        .ok_or("the master's name is missing (`.../MASTER`)")?;
    let master = percent_decode(master)?;
    let db = match path.next() {
        None | Some("") => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| format!("database {db:?} is not a number"))?,
    };
    if path.next().is_some() {
        return Err("too many path parts (`/MASTER[/DB]`)".into());
    }
    let addrs = hosts
        .split(',')
        .map(host_port)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Sentinels {
        addrs,
        master,
        password,
        db,
        tls,
    })
}

/// `HOST:PORT`, or `[V6]:PORT`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("sentinel {s:?}: expected HOST:PORT");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(bad)?;
    Ok((host.to_string(), port))
}

/// `%XX` escapes, as in the URL's other forms.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinels(url: &str) -> Sentinels {
        match Target::parse(url) {
            Ok(Target::Sentinel(s)) => s,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn the_sentinel_form_with_and_without_its_options() {
        let s = sentinels("redis+sentinel://10.0.0.1:26379,sentinel-b:26380/mymaster");
        assert_eq!(
            s,
            Sentinels {
                addrs: vec![("10.0.0.1".into(), 26379), ("sentinel-b".into(), 26380)],
                master: "mymaster".into(),
                password: None,
                db: 0,
                tls: false,
            }
        );
        let s = sentinels("rediss+sentinel://:p%40ss@[::1]:26379/main/3");
        assert_eq!(s.addrs, [("::1".to_string(), 26379)]);
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!((s.master.as_str(), s.db, s.tls), ("main", 3, true));
        assert_eq!(s.redis_info().password.as_deref(), Some("p@ss"));
        assert_eq!(sentinels("redis+sentinel://h:1/m/").db, 0);
    }

    #[test]
    fn a_bad_sentinel_url_says_what_is_wrong() {
        for (url, says) in [
            ("redis+sentinel://h:26379", "master's name"),
            ("redis+sentinel://h:26379/", "master's name"),
            ("redis+sentinel://h/m", "HOST:PORT"),
            ("redis+sentinel://h:0/m", "HOST:PORT"),
            ("redis+sentinel://h:1,/m", "HOST:PORT"),
            ("redis+sentinel://h:x/m", "HOST:PORT"),
            ("redis+sentinel://user:pw@h:1/m", "no user name"),
            ("redis+sentinel://h:1/m/x", "not a number"),
            ("redis+sentinel://h:1/m/-1", "not a number"),
            ("redis+sentinel://h:1/m/1/2", "too many"),
            ("redis+sentinel://:%zz@h:1/m", "%-escape"),
        ] {
            let err = Target::parse(url).expect_err(url);
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn plain_urls_go_to_the_crate() {
        assert!(!Target::parse("redis://127.0.0.1:6379/2").unwrap().tls());
        assert!(Target::parse("rediss://redis.example:6380").unwrap().tls());
        assert!(Target::parse("http://x").is_err());
    }
}
