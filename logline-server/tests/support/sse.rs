//! Reading Server-Sent Events from a response.

use serde_json::Value;

/// One SSE event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// Reads events from `res` until `stop` says so or the stream ends; comments are skipped.
pub async fn read(res: &mut reqwest::Response, stop: impl Fn(&Sse) -> bool) -> Vec<Sse> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                }
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                }
                if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if event.is_empty() {
                continue;
            }
            let e = Sse {
                id,
                event,
                data: serde_json::from_str(&data).unwrap(),
            };
            let done = stop(&e);
            out.push(e);
            if done {
                return out;
            }
        }
    }
    out
}
