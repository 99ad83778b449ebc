//! Where keyledger may send a request to a provider (DESIGN §6.13): the address check, the
//! `PROVIDER_HOSTS` allow-list, and a DNS resolver for the provider HTTP client that resolves,
//! filters and hands the connector only the addresses that passed, so the connection goes to
//! exactly the address that was checked (no second lookup an attacker's DNS could answer
//! differently).
//!
//! It owns the rule, not the HTTP client (`oauth`). It must never let a literal address skip
//! the check (reqwest does not resolve IP literals, so [`check_url`] runs before every call),
//! and its error texts never say whether anything listens at a refused address.

use std::{
    fmt,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
};

use url::{Host, Url};

use crate::config::Config;

/// What the check allows beyond public `https` addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Loopback and private ranges and plain `http` (`OUTBOUND_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// Host suffixes provider URLs must end in (`PROVIDER_HOSTS`); empty means any host.
    pub provider_hosts: Vec<String>,
}

impl OutboundPolicy {
    /// The policy `config` describes.
    pub fn from_config(config: &Config) -> Self {
        Self { allow_private: config.outbound_allow_private, provider_hosts: config.provider_hosts.clone() }
    }
}

/// Why an outbound URL or address is refused; the text is safe to store and show to an admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not `https` (or `http` where private addresses are allowed).
    #[error("the scheme '{0}' is not allowed (https only)")]
    Scheme(String),
    /// No host, or user information in the URL.
    #[error("the URL needs a host and no user information")]
    Host,
    /// The host is not under one of `PROVIDER_HOSTS`.
    #[error("the host '{0}' is not in PROVIDER_HOSTS")]
    NotListed(String),
    /// An address that is never reachable from keyledger.
    #[error("the address {0} is link-local, unspecified, multicast or broadcast")]
    Forbidden(IpAddr),
    /// A loopback or private address while `OUTBOUND_ALLOW_PRIVATE` is off.
    #[error("the address {0} is loopback or private (OUTBOUND_ALLOW_PRIVATE is off)")]
    Private(IpAddr),
    /// The name resolved to no address that passed the check.
    #[error("'{host}' resolved to no allowed address ({reason})")]
    Resolved {
        /// The name.
        host: String,
        /// Why its addresses were refused (or that it had none).
        reason: String,
    },
}

/// The class of an address for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A public unicast address.
    Public,
    /// Loopback or a private range: allowed only with `OUTBOUND_ALLOW_PRIVATE`.
    Private,
    /// Link-local, unspecified, multicast or broadcast: never allowed.
    Forbidden,
}

/// Classifies `ip`; IPv4-mapped and IPv4-compatible IPv6 forms are judged as their IPv4.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if v6.is_unspecified() || v6.is_multicast() || (s[0] & 0xffc0) == 0xfe80 {
                AddressClass::Forbidden
            } else if v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 {
                AddressClass::Private
            } else {
                AddressClass::Public
            }
        }
    }
}

/// The IPv4 address an IPv6 address carries: `::ffff:a.b.c.d` (mapped), `::a.b.c.d`
/// (deprecated compatible) and `64:ff9b::a.b.c.d` (NAT64), since each reaches that IPv4 host.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    None
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 || ip.is_link_local() || ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        AddressClass::Forbidden
    } else if ip.is_loopback() || ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Whether `policy` lets keyledger connect to `ip`.
pub fn check_ip(policy: &OutboundPolicy, ip: IpAddr) -> Result<(), Refused> {
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Private if policy.allow_private => Ok(()),
        AddressClass::Private => Err(Refused::Private(ip)),
        AddressClass::Forbidden => Err(Refused::Forbidden(ip)),
    }
}

/// Everything about `url` that can be judged without a lookup: scheme, host allow-list and a
/// literal address (in whatever notation: the URL parser has already normalised
/// `2852039166`, `0xa9.254.0.1` and `[::ffff:…]` to addresses). Names are judged at call time
/// by [`GuardedResolver`].
pub fn check_url(policy: &OutboundPolicy, url: &Url) -> Result<(), Refused> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        other => return Err(Refused::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Host);
    }
    let host = url.host().ok_or(Refused::Host)?;
    if !policy.provider_hosts.is_empty() {
        let name = url.host_str().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase();
        let listed = policy.provider_hosts.iter().any(|suffix| {
            let suffix = suffix.trim_start_matches('.');
            name == suffix || name.ends_with(&format!(".{suffix}"))
        });
        if !listed {
            return Err(Refused::NotListed(name));
        }
    }
    match host {
        Host::Ipv4(ip) => check_ip(policy, IpAddr::V4(ip)),
        Host::Ipv6(ip) => check_ip(policy, IpAddr::V6(ip)),
        Host::Domain(_) => Ok(()),
    }
}

/// [`check_url`] on a text URL; a URL that does not parse is refused as having no host.
pub fn check_url_str(policy: &OutboundPolicy, url: &str) -> Result<(), Refused> {
    let url = Url::parse(url).map_err(|_| Refused::Host)?;
    check_url(policy, &url)
}

impl Refused {
    /// The rule that was broken, without the refused value (for a 400 to an admin).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Scheme(_) => "must use https (plain http only with OUTBOUND_ALLOW_PRIVATE)",
            Self::Host => "needs a host and no user information",
            Self::NotListed(_) => "must be on a host PROVIDER_HOSTS lists",
            Self::Forbidden(_) => "must not be a link-local, unspecified, multicast or broadcast address",
            Self::Private(_) => "must not be a loopback or private address (OUTBOUND_ALLOW_PRIVATE is off)",
            Self::Resolved { .. } => "must resolve to an allowed address",
        }
    }
}

/// Future of a name lookup.
pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Turns a host name into addresses. The system resolver in production; tests inject their
/// own so that a name can resolve to whatever the test needs.
pub trait Lookup: Send + Sync + fmt::Debug {
    /// The addresses of `host`.
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The system resolver (`getaddrinfo` on a blocking thread, through tokio).
#[derive(Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// The provider client's resolver: looks a name up once, keeps only the addresses the policy
/// allows, and returns those to the connector, which connects to nothing else.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: OutboundPolicy,
    lookup: Arc<dyn Lookup>,
}

impl GuardedResolver {
    /// A resolver for `policy` over `lookup`.
    pub fn new(policy: OutboundPolicy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    /// The allowed addresses of `host`, or why there are none.
    pub async fn resolve_allowed(&self, host: &str) -> Result<Vec<IpAddr>, Refused> {
        let refused = |reason: String| Refused::Resolved { host: host.to_owned(), reason };
        let addrs = self.lookup.lookup(host).await.map_err(|_| refused("the name could not be resolved".into()))?;
        let mut allowed = Vec::with_capacity(addrs.len());
        let mut first_refusal = None;
        for ip in addrs {
            match check_ip(&self.policy, ip) {
                Ok(()) => allowed.push(ip),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        if allowed.is_empty() {
            return Err(refused(first_refusal.map_or_else(|| "no addresses".to_owned(), |e| e.to_string())));
        }
        Ok(allowed)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed = this.resolve_allowed(&host).await?;
            // Port 0: the connector puts the URL's port on each address.
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The [`Refused`] somewhere in an error's source chain (a resolver refusal arrives wrapped
/// in reqwest's and hyper's errors).
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    fn relaxed() -> OutboundPolicy {
        OutboundPolicy { allow_private: true, provider_hosts: vec![] }
    }

    #[test]
    fn metadata_addresses_are_refused_in_every_notation_even_with_private_allowed() {
        for url in [
            "https://169.254.169.254/latest/meta-data",
            "https://2852039166/",
            "https://0xa9.254.0.1/",
            "https://0xA9FEA9FE/",
            "https://0251.0376.0251.0376/",
            "https://169.254.43518/",
            "https://169.254.169.254./",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[::169.254.169.254]/",
            "https://[64:ff9b::169.254.169.254]/",
            "https://[fe80::1]/",
            "https://[febf::1]/",
            "https://0.0.0.0/",
            "https://0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://[ff02::1]/",
            "https://255.255.255.255/",
        ] {
            for policy in [strict(), relaxed()] {
                let err = check_url_str(&policy, url).unwrap_err();
                assert!(matches!(err, Refused::Forbidden(_)), "{url}: {err:?}");
            }
        }
    }

    #[test]
    fn private_and_loopback_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://10.0.0.1/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://100.127.255.255/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
        ] {
            assert!(matches!(check_url_str(&strict(), url), Err(Refused::Private(_))), "{url}");
            assert_eq!(check_url_str(&relaxed(), url), Ok(()), "{url}");
        }
    }

    #[test]
    fn public_https_passes_and_plain_http_needs_private_allowed() {
        for url in [
            "https://accounts.zoho.com/oauth/v2/token",
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
        ] {
            assert_eq!(check_url_str(&strict(), url), Ok(()), "{url}");
        }
        assert_eq!(check_url_str(&strict(), "http://accounts.zoho.com/t"), Err(Refused::Scheme("http".into())));
        assert_eq!(check_url_str(&relaxed(), "http://127.0.0.1:9001/t"), Ok(()));
        assert_eq!(check_url_str(&relaxed(), "ftp://p.example/t"), Err(Refused::Scheme("ftp".into())));
        assert_eq!(check_url_str(&strict(), "https://u:p@p.example/t"), Err(Refused::Host));
    }

    #[test]
    fn provider_hosts_pin_urls_by_suffix() {
        let policy =
            OutboundPolicy { allow_private: false, provider_hosts: vec!["zoho.com".into(), ".google.com".into()] };
        assert_eq!(check_url_str(&policy, "https://accounts.zoho.com/t"), Ok(()));
        assert_eq!(check_url_str(&policy, "https://zoho.com/t"), Ok(()));
        assert_eq!(check_url_str(&policy, "https://oauth2.google.com./t"), Ok(()));
        assert!(matches!(check_url_str(&policy, "https://evilzoho.com/t"), Err(Refused::NotListed(_))));
        assert!(matches!(check_url_str(&policy, "https://zoho.com.evil.example/t"), Err(Refused::NotListed(_))));
        assert!(matches!(check_url_str(&policy, "https://8.8.8.8/t"), Err(Refused::NotListed(_))));
    }

    #[derive(Debug)]
    struct Fixed(Vec<IpAddr>);

    impl Lookup for Fixed {
        fn lookup(&self, _host: &str) -> LookupFuture {
            let addrs = self.0.clone();
            Box::pin(async move { Ok(addrs) })
        }
    }

    #[tokio::test]
    async fn the_resolver_returns_only_allowed_addresses() {
        let mixed: Vec<IpAddr> =
            vec!["169.254.169.254".parse().unwrap(), "93.184.216.34".parse().unwrap(), "10.1.2.3".parse().unwrap()];
        let r = GuardedResolver::new(strict(), Arc::new(Fixed(mixed.clone())));
        assert_eq!(r.resolve_allowed("p.example").await.unwrap(), vec![mixed[1]]);
        let r = GuardedResolver::new(relaxed(), Arc::new(Fixed(mixed.clone())));
        assert_eq!(r.resolve_allowed("p.example").await.unwrap(), vec![mixed[1], mixed[2]]);
        let r = GuardedResolver::new(relaxed(), Arc::new(Fixed(vec![mixed[0]])));
        let err = r.resolve_allowed("p.example").await.unwrap_err();
        assert!(err.to_string().contains("169.254.169.254"), "{err}");
        let r = GuardedResolver::new(strict(), Arc::new(Fixed(vec![])));
        assert!(matches!(r.resolve_allowed("p.example").await, Err(Refused::Resolved { .. })));
    }
}
