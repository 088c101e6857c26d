//! Syslog, MSG being the JSON line, in one of two formats:
//! - local (the default on the local socket): what syslog(3) writes, `<PRI>Mmm dd hh:mm:ss
//!   TAG[PID]: MSG`, which a stock rsyslog (imuxsock, default parsers) and journald parse;
//!   journald cannot parse RFC 5424 there (systemd#19251);
//! - RFC 5424 (the default over UDP and TCP): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
//!   - MSG`.
//!
//! Over the local datagram socket, UDP, or TCP with octet-counting framing (RFC 6587: `LEN SP
//! MSG`). A record longer than `max_record_bytes` (header included; default 8096 bytes, rsyslog's
//! default maxMessageSize) has its argument text trimmed so it still arrives as valid JSON.
//!
//! While the receiver is unreachable the sink holds the record in hand and retries with
//! back-off; the records behind it wait in the bounded queue, and what does not fit there is
//! counted as dropped. A record whose send fails on a live connection is retried once on a
//! new one, then counted as failed. UDP cannot tell whether a datagram arrived: a stopped UDP
//! receiver is seen only through ICMP errors on later sends.
use super::{DEFAULT_QUEUE_CAPACITY, Record, Shared, SinkError, Worker, one_line, trim};
use serde::Deserialize;
use std::{
    fmt,
    io::{self, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket},
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// First delay between reconnection attempts; doubles up to `reconnect_max_ms`.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Sends of one record (on a fresh connection each) before it is counted as failed.
const MAX_ATTEMPTS: u32 = 2;

/// `[sinks.syslog]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogConfig {
    /// Default false.
    pub enabled: bool,
    /// `"unix"` (default), `"udp"` or `"tcp"`.
    pub transport: SyslogTransport,
    /// `"local"` (syslog(3)'s format; the default for unix) or `"rfc5424"` (the default for
    /// udp and tcp).
    pub format: Option<SyslogFormat>,
    /// Longest message, header included (0: no limit); default 8096, rsyslog's default
    /// `maxMessageSize`.
    pub max_record_bytes: usize,
    /// unix: a socket path, default `/dev/log`; udp and tcp: `host:port`, required.
    pub address: Option<String>,
    /// Default `"auth"`.
    pub facility: Facility,
    /// APP-NAME, default `boot-copy`.
    pub app_name: String,
    /// HOSTNAME, default the system's host name.
    pub hostname: Option<String>,
    /// Default 4096 records.
    pub queue_capacity: usize,
    /// Connect and send timeout, default 5000 ms: how long a stalled receiver may hold the
    /// sink's thread on one send.
    pub timeout_ms: u64,
    /// Longest wait between reconnection attempts, default 10000 ms.
    pub reconnect_max_ms: u64,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            transport: SyslogTransport::Unix,
            format: None,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            address: None,
            facility: Facility::Auth,
            app_name: "boot-copy".into(),
            hostname: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            timeout_ms: 5000,
            reconnect_max_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Unix,
    Udp,
    Tcp,
}

/// Longest syslog message by default: rsyslog's default `maxMessageSize`.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 8096;

/// The message header.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// syslog(3): `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`, local time.
    Local,
    /// RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`.
    Rfc5424,
}

/// Syslog facilities by their usual names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User = 1,
    Mail = 2,
    Daemon = 3,
    #[default]
    Auth = 4,
    Syslog = 5,
    Lpr = 6,
    News = 7,
    Uucp = 8,
    Cron = 9,
    Authpriv = 10,
    Ftp = 11,
    Local0 = 16,
    Local1 = 17,
    Local2 = 18,
    Local3 = 19,
    Local4 = 20,
    Local5 = 21,
    Local6 = 22,
    Local7 = 23,
}

impl Facility {
    pub fn code(self) -> u8 {
        self as u8
    }
}

enum Target {
    Unix(PathBuf),
    Udp(String),
    Tcp(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Udp(a) => write!(f, "udp:{a}"),
            Target::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl Conn {
    /// Datagrams go whole or not at all; a TCP frame is one write_all.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.send(bytes).map(drop),
            Conn::Udp(s) => s.send(bytes).map(drop),
            Conn::Tcp(s) => s.write_all(bytes),
        }
    }

    /// A syslog receiver never sends, so a readable TCP socket means FIN or RST: finding out
    /// before writing saves a record from vanishing into a dead connection.
    fn peer_gone(&self) -> Option<io::Error> {
        let Conn::Tcp(s) = self else { return None };
        let mut b = 0u8;
        // SAFETY: a valid socket and a one-byte buffer that outlives the call.
        let n = unsafe {
            libc::recv(
                s.as_raw_fd(),
                (&raw mut b).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => Some(io::ErrorKind::ConnectionAborted.into()),
            n if n > 0 => None,
            _ => Some(io::Error::last_os_error()).filter(|e| e.kind() != io::ErrorKind::WouldBlock),
        }
    }
}

pub(super) struct Syslog {
    target: Target,
    transport: SyslogTransport,
    format: SyslogFormat,
    facility: Facility,
    /// RFC 5424: `HOSTNAME APP-NAME PROCID`; local: `TAG[PID]:`; sanitized once.
    fixed: String,
    max_record_bytes: usize,
    timeout: Duration,
    backoff_max: Duration,
    conn: Option<Conn>,
    backoff: Duration,
    next_attempt: Instant,
    msg: Vec<u8>,
    out: Vec<u8>,
}

impl Syslog {
    pub(super) fn new(cfg: &SyslogConfig) -> Result<Self, SinkError> {
        let need_address = || SinkError::Config {
            key: "syslog",
            message: format!(
                "transport = \"{}\" needs address = \"host:port\"",
                if cfg.transport == SyslogTransport::Udp {
                    "udp"
                } else {
                    "tcp"
                }
            ),
        };
        let target = match cfg.transport {
            SyslogTransport::Unix => {
                Target::Unix(cfg.address.as_deref().unwrap_or("/dev/log").into())
            }
            SyslogTransport::Udp => Target::Udp(cfg.address.clone().ok_or_else(need_address)?),
            SyslogTransport::Tcp => Target::Tcp(cfg.address.clone().ok_or_else(need_address)?),
        };
        if let Target::Udp(a) | Target::Tcp(a) = &target {
            resolve(a).map_err(|e| SinkError::Address {
                address: a.clone(),
                message: format!("{e}; give host:port, for example 127.0.0.1:514"),
            })?;
        }
        if cfg.timeout_ms == 0 {
            return Err(SinkError::Config {
                key: "syslog",
                message: "timeout_ms must be at least 1".into(),
            });
        }
        let hostname = cfg.hostname.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let format = cfg.format.unwrap_or(match cfg.transport {
            SyslogTransport::Unix => SyslogFormat::Local,
            SyslogTransport::Udp | SyslogTransport::Tcp => SyslogFormat::Rfc5424,
        });
        let app = header_field(&cfg.app_name, 48);
        let fixed = match format {
            SyslogFormat::Rfc5424 => format!(
                "{} {app} {}",
                header_field(&hostname, 255),
                std::process::id()
            ),
            // A TAG ends at the first character that is not alphanumeric, `-`, `_`, `.` or `/`
            // (rsyslog's and journald's parsers): `[` here.
            SyslogFormat::Local => format!("{app}[{}]:", std::process::id()),
        };
        Ok(Self {
            target,
            transport: cfg.transport,
            format,
            facility: cfg.facility,
            fixed,
            max_record_bytes: cfg.max_record_bytes,
            timeout: Duration::from_millis(cfg.timeout_ms),
            backoff_max: Duration::from_millis(cfg.reconnect_max_ms).max(BACKOFF_START),
            conn: None,
            backoff: BACKOFF_START,
            next_attempt: Instant::now(),
            msg: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Builds the message, framed for TCP, into `self.out`.
    fn format(&mut self, record: &Record) {
        self.msg.clear();
        let pri = self.facility.code() * 8 + record.severity.code();
        let now = SystemTime::now();
        let _ = match self.format {
            SyslogFormat::Rfc5424 => write!(
                self.msg,
                "<{pri}>1 {} {} {} - ",
                timestamp(now),
                self.fixed,
                record.msgid.as_str()
            ),
            SyslogFormat::Local => {
                write!(self.msg, "<{pri}>{} {} ", local_timestamp(now), self.fixed)
            }
        };
        let budget = match self.max_record_bytes {
            0 => usize::MAX,
            max => max.saturating_sub(self.msg.len()),
        };
        let line = one_line(&record.line);
        match trim::fit(&line, budget) {
            Some(trimmed) => self.msg.extend_from_slice(trimmed.as_bytes()),
            None => self.msg.extend_from_slice(line.as_bytes()),
        }
        self.out.clear();
        if self.transport == SyslogTransport::Tcp {
            let _ = write!(self.out, "{} ", self.msg.len());
        }
        self.out.extend_from_slice(&self.msg);
    }

    fn connect(&self) -> io::Result<Conn> {
        match &self.target {
            Target::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_write_timeout(Some(self.timeout))?;
                Ok(Conn::Unix(s))
            }
            Target::Udp(addr) => {
                let addr = resolve(addr)?;
                let any: SocketAddr = if addr.is_ipv4() {
                    ([0u8; 4], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(any)?;
                s.connect(addr)?;
                s.set_write_timeout(Some(self.timeout))?;
                Ok(Conn::Udp(s))
            }
            Target::Tcp(addr) => {
                let s = TcpStream::connect_timeout(&resolve(addr)?, self.timeout)?;
                s.set_write_timeout(Some(self.timeout))?;
                s.set_nodelay(true)?;
                Ok(Conn::Tcp(s))
            }
        }
    }

    /// Connected, or a connection attempt made now if the back-off allows it.
    fn ready(&mut self, shared: &Shared) -> bool {
        if let Some(e) = self.conn.as_ref().and_then(Conn::peer_gone) {
            self.conn = None;
            shared.down(&format_args!(
                "syslog {} closed the connection: {e}",
                self.target
            ));
        }
        if self.conn.is_some() {
            return true;
        }
        let now = Instant::now();
        if now < self.next_attempt {
            return false;
        }
        // Every attempt, successful or not, spaces the next one: a receiver that accepts and
        // resets at once cannot make us spin.
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(self.backoff_max);
        match self.connect() {
            Ok(c) => {
                self.conn = Some(c);
                shared.up();
                true
            }
            Err(e) => {
                shared.down(&format_args!(
                    "cannot connect to syslog {}: {e}",
                    self.target
                ));
                false
            }
        }
    }

    /// Sleeps until the next connection attempt is due, waking early on abort.
    fn wait(&self, shared: &Shared) {
        while !shared.aborted() {
            let left = self.next_attempt.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

impl Worker for Syslog {
    fn write(&mut self, record: &Record, shared: &Shared) {
        self.format(record);
        let mut attempts = 0;
        while !shared.aborted() {
            if !self.ready(shared) {
                self.wait(shared);
                continue;
            }
            let Some(conn) = &mut self.conn else { continue };
            match conn.send(&self.out) {
                Ok(()) => {
                    self.backoff = BACKOFF_START;
                    shared.ok();
                    return;
                }
                // Retrying cannot help a record too big for a datagram.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    shared.fail(&format_args!(
                        "a {}-byte record is too large for syslog {} ({e}); use transport = \"tcp\"",
                        self.out.len(),
                        self.target
                    ));
                    return;
                }
                Err(e) => {
                    self.conn = None;
                    attempts += 1;
                    let why = format_args!("sending to syslog {}: {e}", self.target);
                    if attempts >= MAX_ATTEMPTS {
                        shared.fail(&why);
                        return;
                    }
                    shared.down(&why);
                }
            }
        }
    }

    /// Connects (or notices a closed connection) while idle too, so `healthy` is current.
    fn tick(&mut self, shared: &Shared) {
        self.ready(shared);
    }
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address"))
}

/// An RFC 5424 header field: printable US-ASCII, at most `max` characters, `-` if empty.
fn header_field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// RFC 3339 in UTC with microseconds, as RFC 5424 allows.
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = (d.as_secs() / 86_400, d.as_secs() % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_micros()
    )
}

/// syslog(3)'s timestamp, `Mmm dd hh:mm:ss` in local time (day space-padded).
fn local_timestamp(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives across the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return timestamp(t);
    }
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{MsgId, Severity};

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::new(951_782_400 + 3661, 123_456_789);
        assert_eq!(timestamp(t), "2000-02-29T01:01:01.123456Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(timestamp(t), "2099-12-31T23:59:59.000000Z");
    }

    #[test]
    fn header_fields_are_printable_ascii() {
        assert_eq!(header_field("host name\u{e9}", 255), "hostname");
        assert_eq!(header_field(" ", 48), "-");
        assert_eq!(header_field(&"a".repeat(60), 48).len(), 48);
    }

    fn sink(transport: SyslogTransport, facility: Facility) -> Syslog {
        Syslog::new(&SyslogConfig {
            transport,
            facility,
            address: Some("127.0.0.1:514".into()),
            hostname: Some("h1".into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn tcp_messages_are_octet_counted() {
        let mut s = sink(SyslogTransport::Tcp, Facility::Local3);
        s.format(&Record::health(r#"{"a":"é"}"#, Severity::Info));
        let out = String::from_utf8(s.out.clone()).unwrap();
        let (len, msg) = out.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        // local3 (19) * 8 + info (6) = 158
        let re = regex::Regex::new(&format!(
            r#"^<158>1 \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z h1 boot-copy {} health - \{{"a":"é"\}}$"#,
            std::process::id()
        ))
        .unwrap();
        assert!(re.is_match(msg), "{msg}");
    }

    #[test]
    fn datagrams_are_not_framed() {
        let mut s = sink(SyslogTransport::Udp, Facility::Auth);
        s.format(&Record::new("{}", Severity::Err, MsgId::Alert));
        let out = String::from_utf8(s.out.clone()).unwrap();
        assert!(out.starts_with("<35>1 "), "{out}");
        assert!(out.ends_with(" alert - {}"), "{out}");
    }

    #[test]
    fn local_socket_defaults_to_syslog3_format() {
        let mut s = Syslog::new(&SyslogConfig::default()).unwrap();
        s.format(&Record::new("{\"a\":1}", Severity::Warning, MsgId::Alert));
        let out = String::from_utf8(s.out.clone()).unwrap();
        // auth (4) * 8 + warning (4) = 36; no RFC 5424 version, host or MSGID.
        let re = regex::Regex::new(&format!(
            r#"^<36>[A-Z][a-z]{{2}} [ 123]\d \d\d:\d\d:\d\d boot-copy\[{}\]: \{{"a":1\}}$"#,
            std::process::id()
        ))
        .unwrap();
        assert!(re.is_match(&out), "{out}");
    }

    #[test]
    fn rfc5424_can_be_chosen_for_the_local_socket() {
        let mut s = Syslog::new(&SyslogConfig {
            format: Some(SyslogFormat::Rfc5424),
            hostname: Some("h1".into()),
            ..Default::default()
        })
        .unwrap();
        s.format(&Record::new("{}", Severity::Info, MsgId::Health));
        let out = String::from_utf8(s.out.clone()).unwrap();
        assert!(out.starts_with("<38>1 "), "{out}");
        let expect = format!(" h1 boot-copy {} health - {{}}", std::process::id());
        assert!(out.ends_with(&expect), "{out}");
    }

    #[test]
    fn long_records_are_trimmed_to_the_message_limit() {
        let args: Vec<String> = (0..2000).map(|i| format!("--suffix={i:05}")).collect();
        let line =
            serde_json::json!({"process": {"args": args}, "rule": {"name": "r"}}).to_string();
        let mut s = Syslog::new(&SyslogConfig::default()).unwrap();
        s.format(&Record::new(line, Severity::Warning, MsgId::Alert));
        assert!(s.out.len() <= DEFAULT_MAX_RECORD_BYTES, "{}", s.out.len());
        let msg = String::from_utf8(s.out.clone()).unwrap();
        let json = &msg[msg.find("]: ").unwrap() + 3..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["rule"]["name"], "r");
        assert_eq!(v["boot_copy"]["trimmed"]["fields"][0], "process.args");
    }

    #[test]
    fn udp_and_tcp_need_an_address() {
        let cfg = SyslogConfig {
            transport: SyslogTransport::Tcp,
            ..Default::default()
        };
        let err = Syslog::new(&cfg).err().unwrap().to_string();
        assert!(err.contains("address"), "{err}");
        let cfg = SyslogConfig {
            transport: SyslogTransport::Udp,
            address: Some("no-port".into()),
            ..Default::default()
        };
        assert!(Syslog::new(&cfg).is_err());
    }

    #[test]
    fn facility_names_parse() {
        #[derive(Deserialize)]
        struct T {
            f: Facility,
        }
        let f = |s: &str| toml::from_str::<T>(&format!("f = \"{s}\"")).map(|t| t.f.code());
        assert_eq!(f("auth").unwrap(), 4);
        assert_eq!(f("authpriv").unwrap(), 10);
        assert_eq!(f("local7").unwrap(), 23);
        assert!(f("local8").is_err());
    }
}
