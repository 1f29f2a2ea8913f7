//! The Janus backend of `--sfu`: the same members and media as against peerbox, through
//! Janus's VideoRoom plugin over its plain HTTP API (`--url http://HOST:8088/janus`). Each
//! member has a session with two handles, as Janus's own demo client does: a publisher (the
//! member offers one sendonly VP8 video, Janus answers) and a subscriber (Janus offers every
//! other member's feed, the member answers; feeds that appear later are added with
//! `subscribe`, one negotiation at a time). Events come by long poll.
//!
//! The API flow is Janus's documented one (`create`, `attach`, VideoRoom `create`,
//! `joinandconfigure`, `join` as subscriber, `subscribe`, `start`, long-poll `GET`). With
//! `--simulcast` the publisher offers rids h, m, l (as janus.js does) and the subscriber
//! `configure`s every video m-line to `substream` 0, the low layer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::sfu::{Member, PcIn, PcOut, spawn_pc};

/// A Janus HTTP endpoint: `http://host:port/path`.
#[derive(Clone)]
struct Api {
    hostport: String,
    path: String,
}

impl Api {
    fn parse(url: &str) -> anyhow::Result<Api> {
        let rest = url
            .strip_prefix("http://")
            .context("the Janus --url must start with http://")?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, "janus"));
        Ok(Api {
            hostport: hostport.to_owned(),
            path: format!("/{}", path.trim_end_matches('/')),
        })
    }

    /// One HTTP/1.1 request on its own connection; the JSON body of the answer.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut tcp = TcpStream::connect(&self.hostport).await?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.hostport,
            body.len()
        );
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(40), tcp.read_to_end(&mut raw))
            .await
            .context("Janus did not answer within 40 s")??;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no HTTP header end")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut payload = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            payload = dechunk(&payload)?;
        }
        if !head.starts_with("http/1.1 200") && !head.starts_with("http/1.0 200") {
            bail!("Janus answered {}", head.lines().next().unwrap_or_default());
        }
        Ok(serde_json::from_slice(&payload)?)
    }

    async fn post(&self, at: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(transaction());
        let v = self
            .call("POST", &format!("{}{at}", self.path), Some(&body))
            .await?;
        if v["janus"] == "error" {
            bail!("Janus error: {}", v["error"]);
        }
        Ok(v)
    }
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol])?.trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).context("short chunk")?);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

fn transaction() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `id` a `create`/`attach` success carries.
fn id_of(v: &Value) -> anyhow::Result<u64> {
    v["data"]["id"]
        .as_u64()
        .with_context(|| format!("no id in {v}"))
}

/// Long-polls a session's events into `tx` until the receiver goes away.
async fn poll_events(api: Api, session: u64, tx: mpsc::Sender<Value>) {
    let path = format!("{}/{session}?maxev=10", api.path);
    loop {
        let v = match api.call("GET", &path, None).await {
            Ok(v) => v,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let events = match v {
            Value::Array(a) => a,
            one => vec![one],
        };
        for e in events {
            if tx.send(e).await.is_err() {
                return;
            }
        }
    }
}

/// One member against Janus's VideoRoom `room` (created by whoever comes first).
pub async fn member(mut me: Member, url: &str, room: u64, members: usize) -> anyhow::Result<()> {
    let api = Api::parse(url)?;
    let session = id_of(&api.post("", json!({"janus": "create"})).await?)?;
    let at = format!("/{session}");
    let attach = json!({"janus": "attach", "plugin": "janus.plugin.videoroom"});
    let publisher = id_of(&api.post(&at, attach.clone()).await?)?;
    let subscriber = id_of(&api.post(&at, attach).await?)?;
    let (events_tx, mut events) = mpsc::channel(64);
    let poller = tokio::spawn(poll_events(api.clone(), session, events_tx));
    let message = |handle: u64, body: Value, jsep: Option<Value>| {
        let mut m = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let api = api.clone();
        let at = format!("/{session}/{handle}");
        async move { api.post(&at, m).await }
    };
    // The room, large enough for everyone, with the bitrate cap out of the way; 427 is "room
    // already exists" (another member made it).
    let created = message(
        publisher,
        json!({"request": "create", "room": room, "publishers": members + 1,
               "bitrate": 2_000_000, "fir_freq": 10, "videocodec": "vp8",
               "audiocodec": "opus"}),
        None,
    )
    .await?;
    let data = &created["plugindata"]["data"];
    if data["videoroom"] != "created" && data["error_code"] != 427 {
        bail!("creating the Janus room: {created}");
    }

    // Simulcast: the publisher sends h, m and l; the subscriber asks for substream 0 (`l`)
    // of every feed, as a small tile would (the peerbox path sends `sfu-view` 160x90).
    let simulcast = me.lower.len() == 2;
    let none = Arc::new(Vec::new());
    let (pub_pc, mut pub_out) = spawn_pc(
        me.ip,
        me.video.clone(),
        me.lower.clone(),
        me.counters.clone(),
    )
    .await?;
    let (sub_pc, mut sub_out) =
        spawn_pc(me.ip, me.video.clone(), none, me.counters.clone()).await?;
    pub_pc.send(PcIn::MakePublishOffer).await?;
    let offer = match pub_out.recv().await {
        Some(PcOut::Offer(sdp)) => sdp,
        _ => bail!("no publish offer"),
    };
    message(
        publisher,
        json!({"request": "joinandconfigure", "ptype": "publisher", "room": room,
               "display": me.name, "audio": false, "video": true}),
        Some(json!({"type": "offer", "sdp": offer})),
    )
    .await?;

    let mut own_feed: Option<u64> = None;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut wanted: Vec<u64> = Vec::new();
    let mut subscribed = false;
    let mut negotiating = false;
    // The subscriber's video mids not yet set to substream 0.
    let mut unconfigured: Vec<String> = Vec::new();
    let mut configured: HashSet<String> = HashSet::new();
    loop {
        // Ask for the feeds not yet asked for, one negotiation at a time.
        if !negotiating && !wanted.is_empty() {
            let streams: Vec<Value> = wanted.drain(..).map(|f| json!({"feed": f})).collect();
            let body = if subscribed {
                json!({"request": "subscribe", "streams": streams})
            } else {
                json!({"request": "join", "ptype": "subscriber", "room": room,
                       "streams": streams})
            };
            subscribed = true;
            negotiating = true;
            message(subscriber, body, None).await?;
        }
        tokio::select! {
            e = events.recv() => {
                let Some(e) = e else { bail!("Janus events ended") };
                if e["janus"] == "hangup" || e["janus"] == "detached" {
                    bail!("Janus ended a handle: {e}");
                }
                if e["janus"] != "event" {
                    continue;
                }
                let data = &e["plugindata"]["data"];
                let sender = e["sender"].as_u64();
                if let Some(err) = data.get("error") {
                    bail!("Janus VideoRoom error: {err}");
                }
                if sender == Some(publisher) {
                    if data["videoroom"] == "joined" {
                        own_feed = data["id"].as_u64();
                    }
                    if let Some(sdp) = e["jsep"]["sdp"].as_str() {
                        pub_pc.send(PcIn::Answer { sdp: sdp.to_owned() }).await?;
                    }
                    let feeds = data["publishers"].as_array().into_iter().flatten();
                    for f in feeds.filter_map(|p| p["id"].as_u64()) {
                        if Some(f) != own_feed && seen.insert(f) {
                            wanted.push(f);
                        }
                    }
                } else if sender == Some(subscriber) {
                    let streams = data["streams"].as_array().into_iter().flatten();
                    for st in streams.filter(|st| st["type"] == "video") {
                        if let Some(mid) = st["mid"].as_str()
                            && simulcast
                            && configured.insert(mid.to_owned())
                        {
                            unconfigured.push(mid.to_owned());
                        }
                    }
                    if let Some(sdp) = e["jsep"]["sdp"].as_str() {
                        sub_pc.send(PcIn::Offer { sdp: sdp.to_owned(), publish: None }).await?;
                    }
                }
            }
            o = sub_out.recv() => match o {
                Some(PcOut::Answer(sdp)) => {
                    message(subscriber, json!({"request": "start"}),
                            Some(json!({"type": "answer", "sdp": sdp}))).await?;
                    negotiating = false;
                    if !unconfigured.is_empty() {
                        let streams: Vec<Value> = unconfigured
                            .drain(..)
                            .map(|mid| json!({"mid": mid, "substream": 0, "temporal": 2}))
                            .collect();
                        message(subscriber, json!({"request": "configure", "streams": streams}),
                                None).await?;
                    }
                }
                Some(PcOut::FirstFrame) => me.first_frame().await,
                Some(PcOut::Failed(e)) => bail!("subscriber media: {e}"),
                _ => bail!("subscriber media task ended"),
            },
            o = pub_out.recv() => match o {
                Some(PcOut::Failed(e)) => bail!("publisher media: {e}"),
                Some(_) => {}
                None => bail!("publisher media task ended"),
            },
        }
        if poller.is_finished() {
            bail!("Janus long poll ended");
        }
    }
}
