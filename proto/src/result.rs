//! What classifying audio produces, free of any transport: the server's classifier and stream
//! windowing return these; the gRPC messages convert to and from them with `From`, and HTTP
//! JSON, WebSocket messages and the CLI's `--json` output are their serde form, so every shape
//! comes from one set of types.

use serde::{Deserialize, Serialize};

use crate::v1 as api;

/// `no_speech`: the audio (a segment, or every segment of a clip) is silence or too faint to
/// judge (core's energy gate, `vericlip_core::audio::activity`); it was not scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Real,
    Fake,
    NoSpeech,
}

impl Verdict {
    /// FAKE when the score reaches the model's threshold.
    pub fn of(score: f64, threshold: f64) -> Self {
        if score >= threshold { Self::Fake } else { Self::Real }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Fake => "fake",
            Self::NoSpeech => "no_speech",
        }
    }
}

/// One window of audio: scored, or `no_speech` (then `fake_score` is 0 and means nothing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    pub index: u32,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub fake_score: f32,
    pub verdict: Verdict,
}

/// Wall-clock milliseconds per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    pub decode_ms: f64,
    pub features_ms: f64,
    pub queue_ms: f64,
    pub inference_ms: f64,
    pub total_ms: f64,
}

/// A clip's (or a finished stream's) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipResult {
    pub verdict: Verdict,
    pub fake_score: f32,
    pub threshold: f64,
    pub model: String,
    pub model_version: u64,
    pub duration_seconds: f64,
    pub request_id: String,
    pub segments: Vec<SegmentResult>,
    pub timings: StageTimings,
}

impl From<Verdict> for api::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Real => api::Verdict::Real,
            Verdict::Fake => api::Verdict::Fake,
            Verdict::NoSpeech => api::Verdict::NoSpeech,
        }
    }
}

impl From<SegmentResult> for api::SegmentScore {
    fn from(s: SegmentResult) -> Self {
        api::SegmentScore {
            index: s.index,
            start_seconds: s.start_seconds,
            end_seconds: s.end_seconds,
            fake_score: s.fake_score,
            verdict: api::Verdict::from(s.verdict) as i32,
        }
    }
}

impl From<StageTimings> for api::StageTimings {
    fn from(t: StageTimings) -> Self {
        api::StageTimings {
            decode_ms: t.decode_ms,
            features_ms: t.features_ms,
            queue_ms: t.queue_ms,
            inference_ms: t.inference_ms,
            total_ms: t.total_ms,
        }
    }
}

impl From<ClipResult> for api::ClassifyResponse {
    fn from(r: ClipResult) -> Self {
        api::ClassifyResponse {
            verdict: api::Verdict::from(r.verdict) as i32,
            fake_score: r.fake_score,
            threshold: r.threshold,
            segments: r.segments.into_iter().map(Into::into).collect(),
            model: r.model,
            model_version: r.model_version,
            duration_seconds: r.duration_seconds,
            timings: Some(r.timings.into()),
            request_id: r.request_id,
        }
    }
}

/// The wire verdict back into the domain one (clients such as the CLI read gRPC answers).
/// An unspecified verdict reads as REAL only if the score says so.
fn verdict_from_wire(v: i32, score: f64, threshold: f64) -> Verdict {
    match api::Verdict::try_from(v) {
        Ok(api::Verdict::Fake) => Verdict::Fake,
        Ok(api::Verdict::Real) => Verdict::Real,
        Ok(api::Verdict::NoSpeech) => Verdict::NoSpeech,
        _ => Verdict::of(score, threshold),
    }
}

impl From<&api::ClassifyResponse> for ClipResult {
    fn from(r: &api::ClassifyResponse) -> Self {
        let t = r.timings.unwrap_or_default();
        ClipResult {
            verdict: verdict_from_wire(r.verdict, f64::from(r.fake_score), r.threshold),
            fake_score: r.fake_score,
            threshold: r.threshold,
            model: r.model.clone(),
            model_version: r.model_version,
            duration_seconds: r.duration_seconds,
            request_id: r.request_id.clone(),
            segments: r.segments.iter().map(|s| SegmentResult::from_wire(s, r.threshold)).collect(),
            timings: StageTimings {
                decode_ms: t.decode_ms,
                features_ms: t.features_ms,
                queue_ms: t.queue_ms,
                inference_ms: t.inference_ms,
                total_ms: t.total_ms,
            },
        }
    }
}

impl SegmentResult {
    pub fn from_wire(s: &api::SegmentScore, threshold: f64) -> Self {
        SegmentResult {
            index: s.index,
            start_seconds: s.start_seconds,
            end_seconds: s.end_seconds,
            fake_score: s.fake_score,
            verdict: verdict_from_wire(s.verdict, f64::from(s.fake_score), threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_and_json_shapes_round_trip() {
        let r = ClipResult {
            verdict: Verdict::Fake,
            fake_score: 0.75,
            threshold: 0.5,
            model: "m".into(),
            model_version: 2,
            duration_seconds: 2.5,
            request_id: "id".into(),
            segments: vec![SegmentResult {
                index: 0,
                start_seconds: 0.0,
                end_seconds: 2.0,
                fake_score: 0.75,
                verdict: Verdict::Fake,
            }],
            timings: StageTimings { total_ms: 1.5, ..Default::default() },
        };
        let wire = api::ClassifyResponse::from(r.clone());
        assert_eq!(wire.verdict, api::Verdict::Fake as i32);
        assert_eq!(ClipResult::from(&wire), r);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["verdict"], "fake");
        assert_eq!(json["segments"][0]["verdict"], "fake");
        assert_eq!(json["timings"]["total_ms"], 1.5);
    }

    #[test]
    fn no_speech_has_one_name_on_every_transport() {
        let s = SegmentResult {
            index: 0,
            start_seconds: 0.0,
            end_seconds: 2.0,
            fake_score: 0.0,
            verdict: Verdict::NoSpeech,
        };
        let wire = api::SegmentScore::from(s);
        assert_eq!(wire.verdict, api::Verdict::NoSpeech as i32);
        assert_eq!(api::Verdict::NoSpeech.as_str_name(), "VERDICT_NO_SPEECH");
        // A no-speech segment's 0 score is below any threshold: the wire verdict, not the score, decides.
        assert_eq!(SegmentResult::from_wire(&wire, 0.0), s);
        assert_eq!(serde_json::to_value(s).unwrap()["verdict"], "no_speech");
        assert_eq!(serde_json::from_value::<Verdict>(serde_json::json!("no_speech")).unwrap(), Verdict::NoSpeech);
        assert_eq!(Verdict::NoSpeech.as_str(), "no_speech");
    }
}
