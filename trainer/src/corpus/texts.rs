//! Sentences for the TTS engines: the game script of `fillets-ng-data` (Debian, GPL-2) in
//! several languages for the full corpus; a few built-in sentences for the tiny corpus.

use std::collections::BTreeMap;
use std::path::Path;

/// Built-in sentences (tiny corpus): no download needed.
pub fn builtin() -> BTreeMap<String, Vec<String>> {
    let en = [
        "Please hold the line while we connect your call.",
        "The meeting has been moved to Thursday afternoon.",
        "Your package will arrive between nine and noon tomorrow.",
        "I never said that, and I would never say such a thing.",
        "Press one to repeat this message, or two to continue.",
        "The weather tonight will be cold with light rain in the north.",
        "We have detected unusual activity on your account.",
        "Thank you for calling, an agent will be with you shortly.",
    ];
    let fr = [
        "Veuillez patienter, nous allons transférer votre appel.",
        "La réunion a été déplacée à jeudi après-midi.",
        "Votre colis arrivera demain entre neuf heures et midi.",
        "Je n'ai jamais dit cela, et je ne le dirais jamais.",
        "Appuyez sur la touche un pour réécouter ce message.",
        "Merci de votre appel, un conseiller va vous répondre.",
    ];
    let es = [
        "Por favor espere mientras transferimos su llamada.",
        "La reunión se ha trasladado al jueves por la tarde.",
        "Su paquete llegará mañana entre las nueve y el mediodía.",
        "Nunca dije eso, y nunca diría algo así.",
        "Pulse uno para repetir este mensaje, o dos para continuar.",
        "Gracias por llamar, un agente le atenderá en breve.",
    ];
    [("en", &en[..]), ("fr", &fr[..]), ("es", &es[..])]
        .into_iter()
        .map(|(l, s)| (l.to_string(), s.iter().map(|t| t.to_string()).collect()))
        .collect()
}

/// Reads the string argument at `s[at..]` (just after an opening quote), honouring `\"`.
fn quoted(s: &str, at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s[at..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            '"' => return Some((out, at + i + 1)),
            c => out.push(c),
        }
    }
    None
}

/// Lines of `dialogs_<lang>.lua` files: `dialogStr("...")`, or for English the third argument of
/// `dialogId("id", "speaker", "...")`. Only lines of at least four words are kept.
pub fn from_fillets(root: &Path, langs: &[&str]) -> BTreeMap<String, Vec<String>> {
    let files = super::debian::files(root);
    langs
        .iter()
        .map(|lang| {
            let suffix = format!("dialogs_{lang}.lua");
            let mut lines = Vec::new();
            for f in files.iter().filter(|f| f.to_string_lossy().ends_with(&suffix)) {
                let Ok(s) = std::fs::read_to_string(f) else { continue };
                let marker = if *lang == "en" { "dialogId(\"" } else { "dialogStr(\"" };
                let mut at = 0;
                while let Some(p) = s[at..].find(marker) {
                    let start = at + p + marker.len();
                    let mut arg = quoted(&s, start);
                    if *lang == "en" {
                        // Skip id and speaker: the text is the third string.
                        for _ in 0..2 {
                            arg = arg.and_then(|(_, end)| s[end..].find('"').and_then(|q| quoted(&s, end + q + 1)));
                        }
                    }
                    match arg {
                        Some((text, end)) => {
                            if text.split_whitespace().count() >= 4 {
                                lines.push(text);
                            }
                            at = end;
                        }
                        None => break,
                    }
                }
            }
            (lang.to_string(), lines)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_dialog_forms() {
        let dir = std::env::temp_dir().join(format!("vericlip-texts-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("script/level")).unwrap();
        std::fs::write(
            dir.join("script/level/dialogs_cs.lua"),
            "dialogStr(\"Ahoj, jak se dnes máš?\")\ndialogStr(\"krátké\")",
        )
        .unwrap();
        std::fs::write(
            dir.join("script/level/dialogs_en.lua"),
            "dialogId(\"x-1\", \"font_small\", \"I say \\\"hello\\\" to all fish.\")",
        )
        .unwrap();
        let t = from_fillets(&dir, &["cs", "en"]);
        assert_eq!(t["cs"], vec!["Ahoj, jak se dnes máš?".to_string()]);
        assert_eq!(t["en"], vec!["I say \"hello\" to all fish.".to_string()]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
