//! Product and category art, drawn as SVG at run time.
//!
//! This module owns every picture the storefront shows: one illustration per product and one
//! icon per category. The catalog is fictional, so there are no photos to license, and the
//! shop must work in a cluster with no internet egress and a strict Content-Security-Policy.
//! Drawing the art from the product's slug, category and name means nothing is fetched or
//! shipped besides the binary, every pod renders the same picture for the same product, and a
//! newly seeded product gets art with no extra step. A hash of the slug picks the hue, the
//! decorations and the accent, so products in one category still look different.
//!
//! The output follows the site's CSP: presentation attributes only (never `style`), no script,
//! no event handlers, no external references, and every gradient id carries a per-product prefix
//! so several drawings can be inlined into one HTML page without their ids clashing.

use std::fmt::{self, Write as _};

/// Near-black used for device bodies and shadows (the brand's background colour).
const INK: &str = "#111418";
/// The brand's hot red-pink accent.
const HOT: &str = "#ff3d57";
/// The brand's gold accent.
const GOLD: &str = "#ffc400";
/// Only system fonts: the CSP allows no font downloads and the art must look the same offline.
const FONT: &str = "system-ui, sans-serif";
/// Aria labels longer than this are cut, so a pathological name cannot blow up the page.
const MAX_LABEL_CHARS: usize = 120;

/// Draw the art for one product; deterministic for the same inputs.
pub fn product_svg(category_slug: &str, product_slug: &str, product_name: &str) -> String {
    let look = Look::new("p", product_slug);
    let mut out = String::with_capacity(4096);
    // Writing into a String never fails; fmt::Write only returns a Result because it is generic.
    // Should that ever change, an empty picture is better than a half-written one.
    if draw_product(&mut out, &look, category_slug, product_name).is_err() {
        out.clear();
    }
    out
}

/// A small icon for a category card on the home page.
pub fn category_svg(category_slug: &str) -> String {
    let look = Look::new("c", category_slug);
    let mut out = String::with_capacity(1536);
    if draw_category(&mut out, &look, category_slug).is_err() {
        out.clear();
    }
    out
}

/// Everything derived from the hash of a slug: the id prefix, the hue and the decoration choices.
struct Look {
    /// Prefix for element ids, unique per slug so inlined drawings do not share gradients.
    id: String,
    hue: u32,
    bits: u64,
}

impl Look {
    fn new(kind: &str, slug: &str) -> Self {
        let hash = mix(fnv1a(slug.as_bytes()));
        Self {
            // 48 bits of hash: collisions between the few hundred products of a page are
            // practically impossible, and the prefix stays short enough to repeat cheaply.
            id: format!("{kind}{:012x}", hash >> 16),
            hue: pick_hue(hash),
            bits: hash >> 9,
        }
    }

    /// A colour at this look's hue, turned by `turn` degrees.
    fn color(&self, turn: u32, saturation: u32, lightness: u32) -> String {
        hsl(self.hue + turn, saturation, lightness)
    }

    /// A choice among `n` options, using hash bits starting at `shift`.
    fn pick(&self, shift: u32, n: u64) -> u64 {
        (self.bits >> shift) % n
    }

    /// One of the two brand accents; gold on reds and pinks, where the hot accent would vanish.
    fn accent(&self) -> &'static str {
        if self.hue >= 320 || self.hue < 30 || self.pick(0, 2) == 0 {
            GOLD
        } else {
            HOT
        }
    }
}

/// Hues that look good as both a pastel background and a saturated object. The yellow-greens
/// (about 50 to 115 degrees) are left out: at the darker shades an object needs they turn olive.
const HUES: [u32; 14] = [
    0, 12, 24, 32, 145, 160, 176, 192, 208, 228, 258, 290, 322, 340,
];

/// A hue from the curated list, nudged by up to 5 degrees so neighbours in a grid still differ.
fn pick_hue(hash: u64) -> u32 {
    let base = HUES[(hash % HUES.len() as u64) as usize];
    let nudge = ((hash >> 4) % 11) as u32;
    (base + 355 + nudge) % 360
}

/// FNV-1a, 64 bit: tiny, dependency-free and stable across Rust versions (unlike `DefaultHasher`),
/// so a product keeps its picture across releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A finaliser (from `MurmurHash3`) so slugs differing in one letter get unrelated hues:
/// raw FNV output changes little in its low bits for a change in the last byte.
fn mix(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// HSL to `#rrggbb`: hex works in every SVG renderer, where `hsl()` in attributes may not.
fn hsl(hue: u32, saturation: u32, lightness: u32) -> String {
    let h = f64::from(hue % 360) / 60.0;
    let s = f64::from(saturation.min(100)) / 100.0;
    let l = f64::from(lightness.min(100)) / 100.0;
    let chroma = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = chroma * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = l - chroma / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b))
}

/// Escape text for XML content and attribute values. Control characters are dropped because
/// XML 1.0 forbids most of them and one would make the whole page's SVG fail to parse.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Words that make poor initials ("The Long Queue" should read LQ, not TL).
const SMALL_WORDS: [&str; 8] = ["a", "an", "and", "for", "of", "the", "to", "with"];

fn is_small_word(word: &str) -> bool {
    SMALL_WORDS
        .iter()
        .any(|small| word.eq_ignore_ascii_case(small))
}

/// Up to two upper-case initials from the name's significant words.
fn initials(name: &str) -> String {
    let pick = |skip_small: bool| -> String {
        name.split_whitespace()
            .filter(|word| !(skip_small && is_small_word(word)))
            .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
            .flat_map(char::to_uppercase)
            .take(2)
            .collect()
    };
    let found = pick(true);
    if found.is_empty() { pick(false) } else { found }
}

/// The first significant word in capitals if it is short enough for a game-case title,
/// otherwise the initials.
fn title_word(name: &str) -> String {
    let word: String = name
        .split_whitespace()
        .find(|word| !is_small_word(word))
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    if (3..=9).contains(&word.chars().count()) {
        word
    } else {
        initials(name)
    }
}

fn open_svg(out: &mut String, size: (u32, u32), label: &str) -> fmt::Result {
    let label: String = label.chars().take(MAX_LABEL_CHARS).collect();
    let label = escape(&label);
    let (w, h) = size;
    write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}"><title>{label}</title>"#
    )
}

/// A vertical two-stop gradient; `diagonal` runs it corner to corner instead.
fn gradient(out: &mut String, id: &str, top: &str, bottom: &str, diagonal: bool) -> fmt::Result {
    let x2 = i32::from(diagonal);
    write!(
        out,
        r#"<linearGradient id="{id}" x1="0" y1="0" x2="{x2}" y2="1"><stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/></linearGradient>"#
    )
}

/// A four-pointed twinkle, the "deal!" sparkle of the background.
fn sparkle(out: &mut String, x: i32, y: i32, r: i32, fill: &str) -> fmt::Result {
    write!(
        out,
        r#"<path d="M{x} {top}Q{x} {y} {right} {y}Q{x} {y} {x} {bottom}Q{x} {y} {left} {y}Q{x} {y} {x} {top}Z" fill="{fill}"/>"#,
        top = y - r,
        bottom = y + r,
        left = x - r,
        right = x + r,
    )
}

fn draw_product(out: &mut String, look: &Look, category: &str, name: &str) -> fmt::Result {
    let id = &look.id;
    open_svg(out, (400, 300), name)?;
    out.push_str("<defs>");
    gradient(
        out,
        &format!("{id}b"),
        &look.color(0, 90, 95),
        &look.color(40, 70, 84),
        true,
    )?;
    gradient(
        out,
        &format!("{id}m"),
        &look.color(0, 75, 66),
        &look.color(8, 70, 46),
        false,
    )?;
    gradient(out, &format!("{id}k"), "#2c323c", INK, false)?;
    if category == "laptops" {
        // Brushed aluminium for the laptop base; skipped elsewhere to keep the markup small.
        gradient(out, &format!("{id}a"), "#e6e9ee", "#a3aab4", false)?;
    }
    out.push_str("</defs>");
    write!(
        out,
        r#"<rect width="400" height="300" fill="url(#{id}b)"/>"#
    )?;

    // A soft disc and ring behind the object; the hash moves them so neighbours in a grid differ.
    let (cx, cy) = [(300, 90), (96, 84), (312, 214), (200, 120)][look.pick(4, 4) as usize];
    write!(
        out,
        r##"<circle cx="{cx}" cy="{cy}" r="96" fill="#fff" opacity=".45"/><circle cx="{}" cy="{}" r="38" fill="none" stroke="#fff" stroke-width="10" opacity=".5"/>"##,
        400 - cx,
        300 - cy
    )?;
    let sparkles: [(i32, i32, i32); 3] = match look.pick(8, 3) {
        0 => [(52, 60, 12), (350, 250, 9), (330, 48, 7)],
        1 => [(356, 64, 12), (44, 232, 9), (70, 40, 7)],
        _ => [(48, 150, 10), (352, 140, 12), (320, 264, 7)],
    };
    for (x, y, r) in sparkles {
        sparkle(out, x, y, r, "#fff")?;
    }
    // Ground shadow so the object sits on something instead of floating.
    write!(
        out,
        r#"<ellipse cx="200" cy="262" rx="140" ry="12" fill="{INK}" opacity=".14"/>"#
    )?;

    match category {
        "books" => book(out, look, name)?,
        "consoles" => console(out, look, name)?,
        "games" => game_case(out, look, name)?,
        "controllers" => gamepad(out, look)?,
        "laptops" => laptop(out, look, name)?,
        "audio" => headphones(out, look, name)?,
        _ => gift(out, look)?,
    }
    out.push_str("</svg>");
    Ok(())
}

/// A hardback leaning a little, with the page block showing and the initials on the cover.
fn book(out: &mut String, look: &Look, name: &str) -> fmt::Result {
    let id = &look.id;
    let dark = look.color(8, 60, 30);
    let accent = look.accent();
    write!(
        out,
        r##"<g transform="rotate(-4 200 150)"><rect x="138" y="46" width="140" height="208" rx="6" fill="#fbf6ea"/><path d="M268 54V248M273 54V248" stroke="#e4d9c2" stroke-width="2"/><rect x="124" y="40" width="146" height="210" rx="8" fill="url(#{id}m)"/><rect x="124" y="40" width="22" height="210" rx="7" fill="{dark}" opacity=".5"/><path d="M146 40V250" stroke="#fff" stroke-width="2" opacity=".35"/><rect x="160" y="74" width="96" height="70" rx="8" fill="#fff" opacity=".94"/><text x="208" y="122" text-anchor="middle" font-family="{FONT}" font-size="36" font-weight="800" fill="{dark}">{text}</text><rect x="162" y="160" width="92" height="8" rx="4" fill="#fff" opacity=".8"/><rect x="174" y="176" width="68" height="8" rx="4" fill="#fff" opacity=".6"/>"##,
        text = escape(&initials(name)),
    )?;
    // The emblem under the title lines varies per book.
    match look.pick(12, 3) {
        0 => write!(
            out,
            r##"<circle cx="208" cy="214" r="13" fill="{accent}"/><circle cx="208" cy="214" r="5" fill="#fff"/>"##
        )?,
        1 => sparkle(out, 208, 214, 16, accent)?,
        _ => write!(
            out,
            r#"<path d="M184 218q12-14 24 0t24 0" fill="none" stroke="{accent}" stroke-width="5" stroke-linecap="round"/>"#
        )?,
    }
    write!(
        out,
        r#"<path d="M236 248v30l9-8 9 8v-30z" fill="{accent}"/></g>"#
    )
}

/// A console: a handheld when the name says so, otherwise a slab with a glowing light bar.
fn console(out: &mut String, look: &Look, name: &str) -> fmt::Result {
    let id = &look.id;
    let glow = look.color(0, 95, 62);
    let accent = look.accent();
    if name.to_lowercase().contains("handheld") {
        write!(
            out,
            r##"<rect x="66" y="92" width="268" height="136" rx="48" fill="url(#{id}m)"/><rect x="128" y="104" width="144" height="112" rx="8" fill="{INK}"/><rect x="136" y="112" width="128" height="96" rx="3" fill="{glow}"/><path d="M136 180l34-30 26 22 20-14 48 34v16H136z" fill="{INK}" opacity=".35"/><circle cx="236" cy="138" r="12" fill="#fff" opacity=".8"/><circle cx="100" cy="132" r="15" fill="{INK}"/><circle cx="100" cy="132" r="9" fill="#3a414c"/><path d="M94 170h12v8h8v12h-8v8H94v-8h-8v-12h8z" fill="{INK}"/><circle cx="300" cy="186" r="15" fill="{INK}"/><circle cx="300" cy="186" r="9" fill="#3a414c"/><circle cx="300" cy="120" r="6" fill="#fff"/><circle cx="312" cy="132" r="6" fill="{accent}"/><circle cx="288" cy="132" r="6" fill="{INK}"/><circle cx="300" cy="144" r="6" fill="#fff" opacity=".7"/>"##
        )
    } else if look.pick(12, 2) == 0 {
        // A tower standing on its base: a black core between two curved, coloured shells.
        write!(
            out,
            r##"<ellipse cx="200" cy="246" rx="64" ry="10" fill="{INK}"/><path d="M176 36C150 40 138 60 136 100L128 236H176z" fill="url(#{id}m)"/><path d="M224 36C250 40 262 60 264 100L272 236H224z" fill="url(#{id}m)"/><path d="M172 38C156 44 148 60 146 96" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round" opacity=".45"/><rect x="172" y="30" width="56" height="210" rx="8" fill="url(#{id}k)"/><rect x="197" y="44" width="6" height="170" rx="3" fill="{glow}"/><rect x="193" y="44" width="14" height="170" rx="7" fill="{glow}" opacity=".25"/><circle cx="200" cy="226" r="4" fill="{accent}"/><rect x="180" y="60" width="4" height="60" rx="2" fill="#000" opacity=".6"/>"##
        )
    } else {
        write!(
            out,
            r##"<path d="M104 112H296L322 138H78z" fill="url(#{id}m)"/><rect x="70" y="136" width="260" height="92" rx="10" fill="url(#{id}k)"/><rect x="70" y="136" width="260" height="6" rx="3" fill="#fff" opacity=".18"/><rect x="70" y="178" width="260" height="14" fill="{glow}" opacity=".25"/><rect x="70" y="182" width="260" height="6" fill="{glow}"/><rect x="92" y="156" width="96" height="5" rx="2.5" fill="#000" opacity=".6"/><circle cx="306" cy="158" r="5" fill="{accent}"/><path d="M232 152v14M242 152v14M252 152v14M262 152v14M272 152v14" stroke="#3a414c" stroke-width="4" stroke-linecap="round"/><rect x="92" y="228" width="40" height="8" rx="3" fill="{INK}"/><rect x="268" y="228" width="40" height="8" rx="3" fill="{INK}"/>"##
        )
    }
}

/// A game case with cover art and the title's first word.
fn game_case(out: &mut String, look: &Look, name: &str) -> fmt::Result {
    let id = &look.id;
    let dark = look.color(8, 60, 28);
    let light = look.color(0, 90, 82);
    let accent = look.accent();
    let title = title_word(name);
    // Shrink long words so they stay inside the 124 px wide cover.
    // Bold capitals are about 0.7 em wide, and the cover leaves about 116 px for text.
    let size = (166 / title.chars().count().max(1)).min(28);
    write!(
        out,
        r#"<g transform="rotate(-5 200 150)"><rect x="132" y="34" width="156" height="224" rx="10" fill="{INK}"/><rect x="138" y="40" width="144" height="20" rx="4" fill="{accent}"/><rect x="142" y="64" width="136" height="186" rx="4" fill="url(#{id}m)"/>"#
    )?;
    match look.pick(12, 4) {
        // A striped sunset over a neon grid.
        3 => write!(
            out,
            r#"<circle cx="210" cy="164" r="32" fill="{GOLD}"/><path d="M176 168h68M178 180h64" stroke="{band}" stroke-width="5"/><path d="M142 192H278V250H142z" fill="{dark}"/><path d="M142 206H278M142 226H278M210 192V250M182 192L154 250M238 192L266 250" stroke="{light}" stroke-width="2" opacity=".7"/>"#,
            band = look.color(4, 70, 56),
        )?,
        // Sun over mountains.
        0 => write!(
            out,
            r#"<circle cx="214" cy="150" r="30" fill="{GOLD}"/><path d="M142 226l44-56 26 30 22-22 44 40v32H142z" fill="{dark}"/>"#
        )?,
        // A ringed planet in a starfield.
        1 => write!(
            out,
            r##"<circle cx="210" cy="160" r="30" fill="{light}"/><ellipse cx="210" cy="160" rx="54" ry="12" fill="none" stroke="{GOLD}" stroke-width="5" transform="rotate(-18 210 160)"/><circle cx="160" cy="204" r="3" fill="#fff"/><circle cx="258" cy="120" r="3" fill="#fff"/><circle cx="250" cy="224" r="2" fill="#fff"/>"##
        )?,
        // A crystal, for the fantasy shelf.
        _ => write!(
            out,
            r##"<path d="M210 116l30 40-30 70-30-70z" fill="{light}"/><path d="M210 116l10 40-10 70-30-70z" fill="#fff" opacity=".5"/><path d="M180 156h60" stroke="{dark}" stroke-width="3"/>"##
        )?,
    }
    write!(
        out,
        r##"<text x="210" y="100" text-anchor="middle" font-family="{FONT}" font-size="{size}" font-weight="900" fill="#fff">{text}</text><rect x="142" y="64" width="10" height="186" fill="#fff" opacity=".15"/></g>"##,
        text = escape(&title),
    )
}

/// A gamepad with a D-pad, face buttons in four hues, thumbsticks and a light bar.
fn gamepad(out: &mut String, look: &Look) -> fmt::Result {
    let id = &look.id;
    let button = |turn| look.color(turn, 85, 60);
    write!(
        out,
        r##"<path d="M138 96H262C300 96 322 118 332 158L350 216C358 248 326 266 302 244L272 212H128L98 244C74 266 42 248 50 216L68 158C78 118 100 96 138 96Z" fill="url(#{id}m)"/><path d="M138 96H262C292 96 312 110 322 134H78C88 110 108 96 138 96Z" fill="#fff" opacity=".2"/><rect x="176" y="104" width="48" height="6" rx="3" fill="{accent}"/><path d="M124 128h16v16h16v16h-16v16h-16v-16h-16v-16h16z" fill="{INK}"/><circle cx="276" cy="132" r="9" fill="{b0}"/><circle cx="296" cy="152" r="9" fill="{b1}"/><circle cx="276" cy="172" r="9" fill="{b2}"/><circle cx="256" cy="152" r="9" fill="{b3}"/><circle cx="168" cy="190" r="19" fill="{INK}"/><circle cx="168" cy="190" r="11" fill="#3a414c"/><circle cx="232" cy="190" r="19" fill="{INK}"/><circle cx="232" cy="190" r="11" fill="#3a414c"/><rect x="180" y="140" width="14" height="7" rx="3.5" fill="{INK}" opacity=".6"/><rect x="206" y="140" width="14" height="7" rx="3.5" fill="{INK}" opacity=".6"/>"##,
        accent = look.accent(),
        b0 = button(90),
        b1 = button(180),
        b2 = button(270),
        b3 = GOLD,
    )
}

/// An open laptop, or a tablet with a stylus when the name says tablet.
fn laptop(out: &mut String, look: &Look, name: &str) -> fmt::Result {
    let id = &look.id;
    let wave = look.color(20, 70, 36);
    let accent = look.accent();
    // The same wallpaper for both shapes: two waves and an app window, clipped by hand to the screen.
    let screen = |x: i32, y: i32, w: i32, h: i32| {
        format!(
            r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="url(#{id}m)"/><path d="M{x} {a}C{b} {c} {d} {e} {f} {g}S{r} {s} {r} {t}V{bot}H{x}z" fill="{wave}" opacity=".55"/><rect x="{wx}" y="{wy}" width="{ww}" height="{wh}" rx="5" fill="#fff" opacity=".92"/><rect x="{wx}" y="{wy}" width="{ww}" height="10" rx="5" fill="{accent}"/><path d="M{lx} {l1}h{lw}M{lx} {l2}h{lw2}" stroke="{INK}" stroke-width="4" stroke-linecap="round" opacity=".25"/>"##,
            a = y + h * 2 / 3,
            b = x + w / 4,
            c = y + h / 3,
            d = x + w / 2,
            e = y + h,
            f = x + w * 3 / 4,
            g = y + h * 2 / 3,
            r = x + w,
            s = y + h / 3,
            t = y + h / 2,
            bot = y + h,
            wx = x + 16,
            wy = y + 16,
            ww = w / 2,
            wh = h / 2,
            lx = x + 26,
            l1 = y + 38,
            l2 = y + 50,
            lw = w / 2 - 22,
            lw2 = w / 4,
        )
    };
    if name.to_lowercase().contains("tablet") {
        write!(
            out,
            r##"<g transform="rotate(-6 200 150)"><rect x="86" y="66" width="228" height="164" rx="18" fill="{INK}"/><rect x="88" y="68" width="224" height="4" rx="2" fill="#fff" opacity=".15"/>{scr}</g><g transform="rotate(28 330 160)"><rect x="322" y="70" width="12" height="170" rx="6" fill="#f4f6f8"/><path d="M322 240h12l-6 18z" fill="{accent}"/></g>"##,
            scr = screen(100, 80, 200, 136),
        )
    } else {
        write!(
            out,
            r##"<rect x="100" y="54" width="200" height="142" rx="10" fill="{INK}"/><circle cx="200" cy="60" r="2" fill="#4a525e"/>{scr}<path d="M82 196H318L340 222Q342 230 332 230H68Q58 230 60 222Z" fill="url(#{id}a)"/><rect x="178" y="196" width="44" height="6" rx="3" fill="#8c939d"/>"##,
            scr = screen(108, 64, 184, 124),
        )
    }
}

/// Over-ear headphones with sound waves and the initials on one cup.
fn headphones(out: &mut String, look: &Look, name: &str) -> fmt::Result {
    let id = &look.id;
    let band = look.color(8, 55, 30);
    let accent = look.accent();
    write!(
        out,
        r##"<path d="M116 184V150C116 66 284 66 284 150V184" fill="none" stroke="{band}" stroke-width="16" stroke-linecap="round"/><path d="M128 130C140 92 260 92 272 130" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round" opacity=".35"/><rect x="106" y="148" width="20" height="40" rx="6" fill="#c4cad2"/><rect x="274" y="148" width="20" height="40" rx="6" fill="#c4cad2"/><rect x="116" y="172" width="40" height="78" rx="18" fill="{INK}"/><rect x="244" y="172" width="40" height="78" rx="18" fill="{INK}"/><rect x="78" y="162" width="64" height="98" rx="30" fill="url(#{id}m)"/><rect x="258" y="162" width="64" height="98" rx="30" fill="url(#{id}m)"/><rect x="88" y="172" width="10" height="58" rx="5" fill="#fff" opacity=".3"/><rect x="268" y="172" width="10" height="58" rx="5" fill="#fff" opacity=".3"/><circle cx="110" cy="211" r="15" fill="none" stroke="{accent}" stroke-width="4"/><text x="290" y="218" text-anchor="middle" font-family="{FONT}" font-size="18" font-weight="800" fill="#fff">{text}</text><path d="M58 188q-14 23 0 46M38 176q-22 35 0 70M342 188q14 23 0 46M362 176q22 35 0 70" fill="none" stroke="#fff" stroke-width="5" stroke-linecap="round" opacity=".85"/>"##,
        text = escape(&initials(name)),
    )
}

/// The fallback for unknown categories: a wrapped present.
fn gift(out: &mut String, look: &Look) -> fmt::Result {
    let id = &look.id;
    let lid = look.color(8, 65, 40);
    let accent = look.accent();
    write!(
        out,
        r#"<rect x="128" y="142" width="144" height="112" rx="6" fill="url(#{id}m)"/><rect x="116" y="116" width="168" height="34" rx="6" fill="{lid}"/><rect x="188" y="116" width="24" height="138" fill="{accent}"/><path d="M200 116C170 70 132 92 164 116ZM200 116C230 70 268 92 236 116Z" fill="{accent}"/><circle cx="200" cy="114" r="10" fill="{accent}"/><rect x="128" y="150" width="144" height="8" fill="{INK}" opacity=".12"/>"#
    )
}

fn draw_category(out: &mut String, look: &Look, category: &str) -> fmt::Result {
    let id = &look.id;
    // Fixed hues per category so the home page reads as a deliberate palette, not a lottery.
    let hue = match category {
        "books" => 14,
        "consoles" => 232,
        "games" => 280,
        "controllers" => 352,
        "laptops" => 196,
        "audio" => 38,
        _ => look.hue,
    };
    let label = match category {
        "books" => "Books",
        "consoles" => "Consoles",
        "games" => "Games",
        "controllers" => "Controllers and accessories",
        "laptops" => "Laptops and tablets",
        "audio" => "Headphones and audio",
        _ => "Gifts",
    };
    let tint = hsl(hue, 90, 62);
    let deep = hsl(hue + 20, 85, 46);
    open_svg(out, (64, 64), label)?;
    out.push_str("<defs>");
    gradient(out, &format!("{id}t"), &tint, &deep, true)?;
    // The highlight disc is clipped to the tile so it cannot poke out of the rounded corner.
    write!(
        out,
        r##"<clipPath id="{id}c"><rect width="64" height="64" rx="14"/></clipPath></defs><rect width="64" height="64" rx="14" fill="url(#{id}t)"/><circle cx="52" cy="8" r="22" fill="#fff" opacity=".14" clip-path="url(#{id}c)"/>"##
    )?;
    let glyph = match category {
        "books" => format!(
            r##"<rect x="20" y="14" width="26" height="36" rx="3" fill="#fff"/><rect x="20" y="14" width="6" height="36" rx="2" fill="{INK}" opacity=".25"/><rect x="30" y="22" width="12" height="4" rx="2" fill="{deep}"/><rect x="30" y="29" width="9" height="3" rx="1.5" fill="{deep}" opacity=".6"/><path d="M38 50v7l3-2 3 2v-7z" fill="{GOLD}"/>"##
        ),
        "consoles" => format!(
            r##"<path d="M18 22H46L52 28H12z" fill="#fff" opacity=".7"/><rect x="10" y="28" width="44" height="18" rx="3" fill="{INK}"/><rect x="10" y="38" width="44" height="3" fill="{GOLD}"/><rect x="15" y="32" width="16" height="2" rx="1" fill="#fff" opacity=".5"/><circle cx="49" cy="33" r="1.6" fill="{HOT}"/>"##
        ),
        "games" => format!(
            r##"<rect x="19" y="10" width="26" height="44" rx="3" fill="{INK}"/><rect x="21" y="12" width="22" height="5" rx="1" fill="{GOLD}"/><rect x="21" y="19" width="22" height="33" rx="1" fill="#fff"/><circle cx="32" cy="32" r="6" fill="{deep}"/><path d="M21 52l9-10 5 5 4-3 4 4v4z" fill="{INK}" opacity=".6"/>"##
        ),
        "controllers" => format!(
            r##"<path d="M22 20H42C49 20 52 24 54 31L57 41C58 47 52 50 48 46L43 41H21L16 46C12 50 6 47 7 41L10 31C12 24 15 20 22 20Z" fill="#fff"/><path d="M18 27h4v4h4v4h-4v4h-4v-4h-4v-4h4z" fill="{INK}"/><circle cx="44" cy="28" r="2.4" fill="{deep}"/><circle cx="48" cy="32" r="2.4" fill="{GOLD}"/><circle cx="40" cy="32" r="2.4" fill="{INK}"/><circle cx="44" cy="36" r="2.4" fill="{HOT}"/>"##
        ),
        "laptops" => format!(
            r##"<rect x="14" y="16" width="36" height="25" rx="3" fill="{INK}"/><rect x="17" y="19" width="30" height="19" rx="1" fill="#fff"/><path d="M17 32c6-6 12 2 18-2s8-2 12 0v8H17z" fill="{deep}" opacity=".7"/><path d="M10 42H54L57 47Q57 49 55 49H9Q7 49 7 47Z" fill="#fff"/><rect x="28" y="42" width="8" height="2" rx="1" fill="{INK}" opacity=".3"/>"##
        ),
        "audio" => format!(
            r##"<path d="M17 38V30C17 14 47 14 47 30V38" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round"/><rect x="11" y="33" width="12" height="19" rx="6" fill="{INK}"/><rect x="41" y="33" width="12" height="19" rx="6" fill="{INK}"/><rect x="20" y="35" width="4" height="15" rx="2" fill="{HOT}"/><rect x="40" y="35" width="4" height="15" rx="2" fill="{HOT}"/>"##
        ),
        _ => format!(
            r##"<rect x="14" y="28" width="36" height="24" rx="2" fill="#fff"/><rect x="11" y="21" width="42" height="9" rx="2" fill="#fff"/><rect x="29" y="21" width="6" height="31" fill="{HOT}"/><path d="M32 21C25 10 16 15 24 21ZM32 21C39 10 48 15 40 21Z" fill="{HOT}"/>"##
        ),
    };
    out.push_str(&glyph);
    out.push_str("</svg>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATEGORIES: [&str; 7] = [
        "books",
        "consoles",
        "games",
        "controllers",
        "laptops",
        "audio",
        "no-such-category",
    ];

    /// The properties every drawing must have for the CSP and for inlining into HTML.
    fn assert_well_formed(svg: &str, view_box: &str) {
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains(&format!(r#"viewBox="{view_box}""#)), "{svg}");
        assert!(svg.contains(r#"role="img""#), "{svg}");
        assert!(
            svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#),
            "{svg}"
        );
        assert_eq!(svg.matches("http").count(), 1, "only the xmlns URL: {svg}");
        assert!(!svg.contains("style="), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("href"), "{svg}");
        // No `onload=`-style attribute: after " on", letters must not run straight into "=".
        for (at, _) in svg.match_indices(" on") {
            let rest = &svg[at + 3..];
            let letters = rest.chars().take_while(char::is_ascii_alphabetic).count();
            assert!(!rest[letters..].starts_with('='), "event handler in {svg}");
        }
        // Escaped text holds no '<', so every '<' starts a tag; each tag is either closed
        // by a matching "</" or self-closed by "/>", which makes the tags balance like this.
        let tags = svg.matches('<').count();
        let ends = svg.matches("</").count();
        assert_eq!(tags, 2 * ends + svg.matches("/>").count(), "{svg}");
        assert!(svg.len() < 4096, "{} bytes", svg.len());
    }

    #[test]
    fn product_art_is_deterministic() {
        let a = product_svg("books", "the-long-queue", "The Long Queue");
        let b = product_svg("books", "the-long-queue", "The Long Queue");
        assert_eq!(a, b);
        assert_eq!(category_svg("audio"), category_svg("audio"));
    }

    #[test]
    fn different_slugs_give_different_art() {
        for category in CATEGORIES {
            let a = product_svg(category, "kestrel-go-handheld", "Same Name");
            let b = product_svg(category, "kestrel-go-lite", "Same Name");
            assert_ne!(a, b, "{category}");
        }
    }

    #[test]
    fn names_are_escaped() {
        for category in CATEGORIES {
            let svg = product_svg(category, "evil", r#"<&" 'Bad' Name>"#);
            assert!(
                svg.contains("&lt;&amp;&quot; &#39;Bad&#39; Name&gt;"),
                "{svg}"
            );
            assert!(!svg.contains("<&"), "{svg}");
            assert!(!svg.contains(r#""<"#), "{svg}");
            assert_well_formed(&svg, "0 0 400 300");
        }
        // Initials come from the escaped name too, so markup cannot sneak in through them.
        let svg = product_svg("books", "x", "<b>old &amp; \"new\"");
        assert!(!svg.contains("<b>"), "{svg}");
    }

    #[test]
    fn every_category_is_well_formed() {
        for category in CATEGORIES {
            assert_well_formed(&category_svg(category), "0 0 64 64");
            for slug in ["a", "novaform-helix-pro", "the-quiet-engine", "x-9"] {
                let svg = product_svg(category, slug, "The Long Queue: A Black Friday Mystery");
                assert_well_formed(&svg, "0 0 400 300");
            }
        }
    }

    #[test]
    fn gradient_ids_are_unique_per_product() {
        let a = product_svg("audio", "tidewave-buds", "Tidewave Buds");
        let b = product_svg("audio", "tidewave-buds-pro", "Tidewave Buds Pro");
        let id = |svg: &str| {
            let start = svg.find(r#"id=""#).map(|i| i + 4).unwrap_or_default();
            svg[start..]
                .split('"')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        assert_ne!(id(&a), id(&b));
        assert!(a.contains(&format!("url(#{})", id(&a))));
    }

    #[test]
    fn initials_skip_small_words() {
        assert_eq!(initials("The Long Queue: A Black Friday Mystery"), "LQ");
        assert_eq!(initials("code like a cat"), "CL");
        assert_eq!(initials("The"), "T");
        assert_eq!(initials(""), "");
        assert_eq!(title_word("Starfall Legends"), "STARFALL");
        assert_eq!(title_word("Frostline Tactics"), "FROSTLINE");
        assert_eq!(title_word("Extraordinarily Long Title"), "EL");
    }

    #[test]
    fn hsl_matches_known_colours() {
        assert_eq!(hsl(0, 100, 50), "#ff0000");
        assert_eq!(hsl(120, 100, 50), "#00ff00");
        assert_eq!(hsl(240, 100, 50), "#0000ff");
        assert_eq!(hsl(0, 0, 100), "#ffffff");
    }
}
