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

/// Japanese sentences for the Kokoro voices (through the package's own Japanese G2P). Written
/// for this corpus: everyday announcements, news and conversation, no names of real people.
pub fn japanese() -> Vec<String> {
    [
        "本日はご来店いただき、誠にありがとうございます。",
        "次の電車は、快速の東京行きです。",
        "明日の天気は、晴れのち曇り、夕方から雨が降るでしょう。",
        "お電話ありがとうございます。担当者におつなぎします。",
        "この番号は現在使われておりません。",
        "会議は木曜日の午後三時に変更になりました。",
        "お荷物は明日の午前中にお届けする予定です。",
        "私はそんなことを一度も言っていません。",
        "駅の東口を出て、まっすぐ五分ほど歩いてください。",
        "ただいま電話が大変混み合っております。",
        "ご注文の商品は、来週の月曜日に発送いたします。",
        "お客様のアカウントで不審なログインが確認されました。",
        "暗証番号を入力したあと、シャープを押してください。",
        "昨日の試合は、最後まで本当に面白かったですね。",
        "週末は家族と一緒に山へハイキングに行きました。",
        "このボタンを押すと、最初の画面に戻ります。",
        "図書館は毎週月曜日が休館日となっております。",
        "新しい駅ビルには、たくさんのお店が入っています。",
        "すみません、もう一度ゆっくり話していただけますか。",
        "今日は朝から雪が降っていて、道がとても滑りやすいです。",
        "予約の確認のため、お名前と電話番号を教えてください。",
        "台風の影響で、午後の便はすべて欠航となりました。",
        "この薬は食後に一日三回飲んでください。",
        "子どもたちは公園で元気にサッカーをしています。",
        "お支払いは現金とクレジットカードのどちらになさいますか。",
        "市役所の窓口は午前八時半から開いています。",
        "新しいソフトウェアの更新が利用可能になりました。",
        "夏休みには祖父母の家で一週間過ごす予定です。",
        "まもなく三番線に各駅停車が参ります。",
        "今月の電気料金は先月より少し高くなりました。",
        "この道をまっすぐ進むと、右手に郵便局があります。",
        "申し訳ございませんが、本日の受付は終了いたしました。",
        "彼女は毎朝六時に起きて、川沿いを走っています。",
        "詳しい情報は、ホームページをご覧ください。",
        "明日の朝までに、報告書を提出してください。",
        "お忘れ物のないよう、ご注意ください。",
    ]
    .iter()
    .map(|s| s.to_string())
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
