//! The node-to-node relay. A member whose room lives on another node keeps its WebSocket on
//! the node it reached (the edge); the edge opens one WSS connection per such member to the
//! home node's HTTPS port, on [`PATH`], and copies frames both ways. The home serves it with
//! its ordinary session code (rate limits, login, resume, host powers), under the member's
//! own client address, so nothing in the room logic knows about nodes.
//!
//! Why one connection per member rather than one multiplexed link per pair of nodes: TCP's
//! flow control and the existing bounded queues then apply per member (one slow member
//! cannot stall another's frames), a broken link affects one member, and the home needs no
//! second session implementation.
//!
//! A link that breaks (the connection ends without the home's close frame) is made again,
//! within [`RECONNECT_WITHIN`], and its first frame is the member's login with a resume of
//! the session (from the last `joined` the home sent): the member keeps its socket and its
//! id, gets that `joined` (`resumed: true`), and its frames meanwhile wait in the link's
//! bounded queue. Frames in flight when it broke may be lost. A home that closes the link
//! (shutting down, a replaced or removed session) ends the member's session with its code. Why the HTTPS port: the other nodes need
//! nothing open beyond what clients already reach.
//!
//! Authentication, both ways. The edge: the upgrade request carries [`HEADER`], an
//! HMAC-SHA256 under `cluster.secret` of the edge's node id, the time, the member's client
//! address and host; the home refuses it unless it verifies and is at most [`SKEW`] seconds
//! old. The home: every node publishes in its directory record ([`record`]) the SHA-256 of the
//! leaf certificate it serves, signed under `cluster.secret` with its id and address, and
//! re-publishes it within half a second of a certificate reload; the edge pins the
//! certificate to that digest ([`connector`]) and still checks the handshake's signature, so
//! neither Redis nor anyone on the network between the nodes can put another certificate
//! (or another node) in the home's place. Why a pin and not a CA: nodes are addressed by IP,
//! with whatever certificate the node serves its clients (self-signed, or an ACME one for the
//! public name, not the private address), so no name could be checked; the pin needs no
//! configuration and follows renewals.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::header::HeaderMap;
use ring::hmac;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::limit::lock;
use crate::signal::room::Peer;
pub use crate::turn::credentials::unix_now;

/// The path of the node-to-node upgrade on the HTTPS port.
pub const PATH: &str = "/_peerbox/node";
/// The request header that authenticates the edge node.
pub const HEADER: &str = "x-peerbox-relay";
/// How old (or how far ahead) a relay authorization may be.
pub const SKEW: u64 = 60;
/// Bound of the TCP connect, TLS and WebSocket handshakes to the home node.
const CONNECT: Duration = Duration::from_secs(3);
const CONTEXT: &str = "peerbox relay v1";

/// What the home learns from a verified relay request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    pub node: String,
    pub client: SocketAddr,
    pub host: Option<String>,
}

/// The hex HMAC-SHA256 of `text` under `secret`.
fn sign(secret: &str, text: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    crate::hex::encode(hmac::sign(&key, text.as_bytes()).as_ref())
}

/// Whether `tag` (hex) is the HMAC-SHA256 of `text` under `secret` (compared in constant time).
fn check(secret: &str, text: &str, tag: &str) -> Option<()> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, text.as_bytes(), &decode_hex(tag)?).ok()
}

/// Exactly `N` space-separated fields.
fn fields<const N: usize>(value: &str) -> Option<[&str; N]> {
    let mut parts = value.split(' ');
    let out: Vec<&str> = parts.by_ref().take(N).collect();
    if parts.next().is_some() {
        return None;
    }
    out.try_into().ok()
}

/// The [`HEADER`] value: `<node> <unix time> <client address> <host or -> <hex mac>`.
pub fn authorization(
    secret: &str,
    node: &str,
    client: SocketAddr,
    host: Option<&str>,
    time: u64,
) -> String {
    let host = host.unwrap_or("-");
    let tag = sign(
        secret,
        &format!("{CONTEXT}\n{node}\n{time}\n{client}\n{host}"),
    );
    format!("{node} {time} {client} {host} {tag}")
}

/// The edge's node and the member it relays, if [`HEADER`] verifies under `secret` at `now`.
pub fn verify(secret: &str, headers: &HeaderMap, now: u64) -> Option<Forwarded> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let [node, time, client, host, tag] = fields(value)?;
    let time: u64 = time.parse().ok()?;
    if time.abs_diff(now) > SKEW {
        return None;
    }
    let client: SocketAddr = client.parse().ok()?;
    check(
        secret,
        &format!("{CONTEXT}\n{node}\n{time}\n{client}\n{host}"),
        tag,
    )?;
    Some(Forwarded {
        node: node.to_owned(),
        client,
        host: (host != "-").then(|| host.to_owned()),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A leaf certificate's SHA-256: what a node's record pins.
pub type Pin = [u8; 32];

pub fn pin_of(cert: &CertificateDer<'_>) -> Pin {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut pin = [0; 32];
    pin.copy_from_slice(digest.as_ref());
    pin
}

const RECORD_CONTEXT: &str = "peerbox node v1";

fn record_text(node: &str, address: SocketAddr, pin: &str) -> String {
    format!("{RECORD_CONTEXT}\n{node}\n{address}\n{pin}")
}

/// A node's directory record (the value of its liveness key): `<address> <hex pin> <hex
/// mac>`, the mac binding the node's id, address and certificate under `secret`.
pub fn record(secret: &str, node: &str, address: SocketAddr, pin: &Pin) -> String {
    let pin = crate::hex::encode(pin);
    let tag = sign(secret, &record_text(node, address, &pin));
    format!("{address} {pin} {tag}")
}

/// The address and certificate pin of `node`, if `value` is its record signed under `secret`.
pub fn read_record(secret: &str, node: &str, value: &str) -> Option<(SocketAddr, Pin)> {
    let [address, pin, tag] = fields(value)?;
    let address: SocketAddr = address.parse().ok()?;
    check(secret, &record_text(node, address, pin), tag)?;
    let pin: Pin = decode_hex(pin)?.try_into().ok()?;
    Some((address, pin))
}

/// The TLS client of one link: it accepts only the leaf certificate whose SHA-256 is `pin`,
/// and checks the handshake's signature with it (ring).
pub fn connector(pin: Pin) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        pin,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        });
    match config {
        Ok(mut c) => {
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsConnector::from(Arc::new(c))
        }
        // The ring provider always supports the default versions.
        Err(e) => unreachable!("ring supports TLS 1.2 and 1.3: {e}"),
    }
}

#[derive(Debug)]
struct Pinned {
    pin: Pin,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Constant time is not needed: the pin is public (it is in the directory).
        if pin_of(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a session shares with the links it opens: set when the home ended the relay, and
/// the close frame the home sent (given to the client as it is: 4001 replaced, 1008 removed,
/// 1001 shutting down).
#[derive(Debug, Default, Clone)]
pub struct HomeEnd {
    pub gone: CancellationToken,
    pub close: Arc<Mutex<Option<CloseFrame>>>,
}

/// One member's relay to its room's home node: frames from the member go into a bounded
/// queue the link's task writes; frames from the home go into the member's own queue.
#[derive(Debug)]
pub struct Link {
    /// The room it was opened for.
    pub room: String,
    tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled when the session lets go of this link (it must not end the session then).
    dropped: CancellationToken,
}

/// Where and as whom a link connects.
pub struct Target<'a> {
    pub home: SocketAddr,
    /// The home's certificate, from its signed record.
    pub pin: Pin,
    pub node: &'a str,
    pub secret: &'a str,
    pub client: SocketAddr,
    pub host: Option<&'a str>,
    pub max_message_bytes: usize,
}

impl Link {
    /// Starts the link's task with the member's `login` as its first frame; frames given to
    /// [`Link::forward`] meanwhile wait in its queue.
    pub fn open(
        target: Target<'_>,
        room: String,
        peer: Arc<Peer>,
        queue: usize,
        end: HomeEnd,
        login: Utf8Bytes,
    ) -> Link {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let dropped = CancellationToken::new();
        let task = Task {
            home: target.home,
            secret: target.secret.to_owned(),
            node: target.node.to_owned(),
            client: target.client,
            host: target.host.map(str::to_owned),
            connector: connector(target.pin),
            max: target.max_message_bytes,
            rx,
            unsent: Some(login.clone()),
            login,
            resume: None,
            peer,
            end,
            dropped: dropped.clone(),
        };
        tokio::spawn(task.run());
        Link { room, tx, dropped }
    }

    /// Queues a frame for the home; `false` when the queue is full (the home is not reading).
    pub fn forward(&self, frame: Utf8Bytes) -> bool {
        self.tx.try_send(frame).is_ok()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.dropped.cancel();
    }
}

/// How a link that broke (not one the home closed) is made again: after these pauses, each
/// try bounded by [`CONNECT`]; the member's frames wait meanwhile in the link's bounded queue.
const RECONNECT: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Bound of all the tries together: then the member hears 1001 and resumes on its own.
const RECONNECT_WITHIN: Duration = Duration::from_secs(4);

struct Task {
    home: SocketAddr,
    secret: String,
    node: String,
    client: SocketAddr,
    host: Option<String>,
    connector: TlsConnector,
    max: usize,
    rx: mpsc::Receiver<Utf8Bytes>,
    /// A frame to send before the next one from the queue (the login, or the frame a
    /// broken link failed to send).
    unsent: Option<Utf8Bytes>,
    /// The member's login as it sent it, for a resume on a new link.
    login: Utf8Bytes,
    /// The session id and resume token of the last `joined` the home sent.
    resume: Option<(String, String)>,
    peer: Arc<Peer>,
    end: HomeEnd,
    dropped: CancellationToken,
}

type LinkWs = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// How one connection of a link ended.
enum Ended {
    /// The home closed it (its decision, passed on to the member) or the first connection
    /// failed: the member's session ends.
    Home,
    /// The member's session let go.
    Dropped,
    /// The connection broke: made again, with a resume.
    Broken,
}

impl Task {
    async fn connect(&self) -> anyhow::Result<LinkWs> {
        let tcp = TcpStream::connect(self.home).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.home.ip().into());
        let tls = self.connector.connect(name, tcp).await?;
        let mut req = format!("wss://{}{PATH}", self.home).into_client_request()?;
        let auth = authorization(
            &self.secret,
            &self.node,
            self.client,
            self.host.as_deref(),
            unix_now(),
        );
        req.headers_mut().insert(HEADER, auth.parse()?);
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(self.max);
        config.max_frame_size = Some(self.max);
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tls, Some(config)).await?;
        Ok(ws)
    }

    /// Connects within [`CONNECT`]; `None` when it failed or the session let go.
    async fn try_connect(&self) -> Option<LinkWs> {
        tokio::select! {
            r = tokio::time::timeout(CONNECT, self.connect()) => match r {
                Ok(Ok(ws)) => Some(ws),
                Ok(Err(e)) => {
                    tracing::info!(home = %self.home, error = %e, "relay to home node failed");
                    None
                }
                Err(_) => {
                    tracing::info!(home = %self.home, "relay to home node timed out");
                    None
                }
            },
            _ = self.dropped.cancelled() => None,
        }
    }

    async fn run(mut self) {
        let Some(mut ws) = self.try_connect().await else {
            return self.ended();
        };
        loop {
            match self.pump(ws).await {
                Ended::Dropped => return,
                Ended::Home => return self.ended(),
                Ended::Broken => {}
            }
            tracing::info!(home = %self.home, "relay to home node broke: reconnecting");
            let again = tokio::time::timeout(RECONNECT_WITHIN, self.reconnect()).await;
            let Ok(Some(again)) = again else {
                tracing::info!(home = %self.home, "relay to home node not made again");
                return self.ended();
            };
            ws = again;
        }
    }

    /// A new connection after a break, its first frame the member's login with a resume of
    /// its session (the home lets it take its place in the room back); `None` if no try in
    /// [`RECONNECT`] made one.
    async fn reconnect(&mut self) -> Option<LinkWs> {
        let login = self.resume_login()?;
        for pause in RECONNECT {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.dropped.cancelled() => return None,
            }
            if let Some(ws) = self.try_connect().await {
                // The resume goes first; the frame the broken link could not send, after.
                let mut ws = ws;
                if ws.send(Message::Text(login.clone())).await.is_err() {
                    continue;
                }
                return Some(ws);
            }
        }
        None
    }

    /// The member's login with `data.resume` from the last `joined`.
    fn resume_login(&self) -> Option<Utf8Bytes> {
        let (id, token) = self.resume.as_ref()?;
        let mut login: serde_json::Value = serde_json::from_str(self.login.as_str()).ok()?;
        let data = login.get_mut("data")?.as_object_mut()?;
        data.insert(
            "resume".into(),
            serde_json::json!({"sessionId": id, "token": token}),
        );
        Some(Utf8Bytes::from(login.to_string()))
    }

    /// Notes the session id and resume token of a `joined` from the home.
    fn note_joined(&mut self, text: &str) {
        if !text.contains("\"resumeToken\"") {
            return;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        if v["type"] != "joined" {
            return;
        }
        if let (Some(id), Some(token)) = (v["data"].as_str(), v["resumeToken"].as_str()) {
            self.resume = Some((id.to_owned(), token.to_owned()));
        }
    }

    /// Copies frames both ways on one connection until it ends.
    async fn pump(&mut self, ws: LinkWs) -> Ended {
        let (mut sink, mut stream) = ws.split();
        loop {
            let next = match self.unsent.take() {
                Some(f) => Some(f),
                None => tokio::select! {
                    frame = self.rx.recv() => match frame {
                        Some(f) => Some(f),
                        None => {
                            // The member's session let go: close, so the home's session
                            // leaves the room now rather than at its idle timeout.
                            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                                sink.send(Message::Close(None)).await?;
                                while let Some(Ok(_)) = stream.next().await {}
                                Ok::<_, tokio_tungstenite::tungstenite::Error>(())
                            })
                            .await;
                            return Ended::Dropped;
                        }
                    },
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Text(t))) => {
                            self.note_joined(t.as_str());
                            self.peer.send(t);
                            None
                        }
                        Some(Ok(Message::Close(frame))) => {
                            *lock(&self.end.close) = frame;
                            return Ended::Home;
                        }
                        // tungstenite answers the home's pings itself.
                        Some(Ok(_)) => None,
                        Some(Err(_)) | None => return Ended::Broken,
                    },
                },
            };
            if let Some(f) = next
                && sink.send(Message::Text(f.clone())).await.is_err()
            {
                self.unsent = Some(f);
                return Ended::Broken;
            }
        }
    }

    fn ended(&self) {
        if !self.dropped.is_cancelled() {
            self.end.gone.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, value.parse().unwrap());
        h
    }

    #[test]
    fn authorization_round_trips_and_refuses_tampering() {
        let client: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let good = authorization(SECRET, "b", client, Some("peerbox.test"), 1000);
        let want = Forwarded {
            node: "b".into(),
            client,
            host: Some("peerbox.test".into()),
        };
        assert_eq!(verify(SECRET, &headers(&good), 1000), Some(want.clone()));
        assert_eq!(verify(SECRET, &headers(&good), 1000 + SKEW), Some(want));
        let no_host = authorization(SECRET, "b", client, None, 1000);
        assert_eq!(
            verify(SECRET, &headers(&no_host), 1000).map(|f| f.host),
            Some(None)
        );
        let other = "another-secret-another-secret-xx";
        let cases = [
            (verify(SECRET, &headers(&good), 1000 + SKEW + 1), "too old"),
            (verify(SECRET, &headers(&good), 1000 - SKEW - 1), "ahead"),
            (verify(other, &headers(&good), 1000), "other secret"),
            (
                verify(
                    SECRET,
                    &headers(&good.replace("198.51.100.7", "198.51.100.8")),
                    1000,
                ),
                "client changed",
            ),
            (
                verify(SECRET, &headers(&good.replacen("b ", "c ", 1)), 1000),
                "node changed",
            ),
            (verify(SECRET, &headers("b 1000"), 1000), "short"),
            (verify(SECRET, &HeaderMap::new(), 1000), "missing"),
        ];
        for (got, case) in cases {
            assert_eq!(got, None, "{case}");
        }
    }

    #[test]
    fn node_records_verify_only_as_signed() {
        let address: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let pin = [7u8; 32];
        let good = record(SECRET, "n1", address, &pin);
        assert_eq!(read_record(SECRET, "n1", &good), Some((address, pin)));
        let other_pin = crate::hex::encode(&[8u8; 32]);
        let cases = [
            (read_record(SECRET, "n2", &good), "another node's name"),
            (
                read_record("another-secret-another-secret-xx", "n1", &good),
                "other secret",
            ),
            (
                read_record(SECRET, "n1", &good.replace("10.0.0.2", "10.0.0.3")),
                "address changed",
            ),
            (
                read_record(
                    SECRET,
                    "n1",
                    &good.replace(&crate::hex::encode(&pin), &other_pin),
                ),
                "pin changed",
            ),
            (
                read_record(SECRET, "n1", "10.0.0.2:443"),
                "the old unsigned record",
            ),
        ];
        for (got, case) in cases {
            assert_eq!(got, None, "{case}");
        }
    }
}
