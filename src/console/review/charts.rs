//! Bar charts as inline SVG, rendered on the server: pure functions from numbers to markup,
//! so the access review shows pictures with no JavaScript and no network.
//!
//! Every chart is an `<svg role="img">` named by its `<title>` and described by its
//! `<desc>` (which states the figures in words), and every bar carries its label and its
//! value as text, so the numbers are there for a screen reader, a text browser and a
//! printout alike; colour is never the only carrier (the stacked chart writes "allowed" and
//! "refused" figures beside each bar). Colours are SVG presentation attributes, not
//! `style`, so a strict Content-Security-Policy (no inline styles) still shows them. The
//! drawing has a `viewBox` and no fixed size: it scales to the width of its container.

use std::fmt::Write as _;

use crate::domain::Timestamp;

/// One bar: a category and how many things fall in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// The category, shown left of the bar.
    pub label: String,
    /// How many.
    pub value: u64,
}

/// One day's checks, from the usage records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayChecks {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Checks that passed.
    pub allowed: u64,
    /// Checks that were refused.
    pub refused: u64,
}

/// What a chart is called and says, besides its bars.
#[derive(Debug, Clone, Copy)]
pub struct ChartText<'a> {
    /// A document-unique id stem for the `<title>` and `<desc>` the chart is labelled by.
    pub id: &'a str,
    /// The chart's title.
    pub title: &'a str,
    /// One sentence on what is counted (the figures are appended).
    pub summary: &'a str,
}

/// The colour of a bar of a one-series chart.
const BAR: &str = "#1f5fa8";
/// The colour of allowed checks.
const ALLOWED: &str = "#2e7d32";
/// The colour of refused checks.
const REFUSED: &str = "#b3261e";
/// The colour of text.
const INK: &str = "#1b1b1b";

/// The drawing's width in user units; it scales to the container (about 30rem wide on a
/// desktop, the screen's width on a phone, where 400 units keep 12-unit text readable).
const WIDTH: u32 = 400;
/// Where bars start: labels sit left of it.
const LABEL_WIDTH: u32 = 124;
/// The room kept right of the longest bar of a one-series chart for its value.
const VALUE_ROOM: u32 = 60;
/// The room kept right of the longest bar of the checks chart, whose figures sit under it.
const CHECKS_ROOM: u32 = 8;
/// One row's height.
const ROW: u32 = 26;
/// One row's height in the checks chart: the bar, and its figures under it.
const CHECKS_ROW: u32 = 38;
/// A bar's thickness.
const BAR_HEIGHT: u32 = 16;
/// Room above the first row (the legend, in the stacked chart).
const TOP: u32 = 8;

/// Escapes text for SVG (XML) content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The length of a bar of `value` when the largest is `max`, in user units; a non-zero
/// value always gets at least one unit, so it never looks like nothing.
fn length(value: u64, max: u64, room: u32) -> u32 {
    let room = u64::from(room);
    if max == 0 || value == 0 {
        return 0;
    }
    let scaled = value.saturating_mul(room) / max;
    u32::try_from(scaled.max(1)).unwrap_or(WIDTH)
}

/// Opens the `<svg>` with its title and description, for `rows` rows below `top`.
fn open(svg: &mut String, text: &ChartText<'_>, described: &str, top: u32, rows: usize, row: u32) {
    let height =
        top.saturating_add(row.saturating_mul(u32::try_from(rows.max(1)).unwrap_or(u32::MAX))).saturating_add(4);
    let id = escape(text.id);
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" viewBox=\"0 0 {WIDTH} {height}\" \
         aria-labelledby=\"{id}-title {id}-desc\" font-family=\"system-ui, sans-serif\" font-size=\"14\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{} {}</desc>",
        escape(text.title),
        escape(text.summary),
        escape(described),
    );
}

/// The text of an empty chart.
fn nothing(svg: &mut String, top: u32) {
    let _ = write!(svg, "<text x=\"0\" y=\"{}\" fill=\"{INK}\">Nothing recorded yet.</text>", top + 17);
}

/// A horizontal bar chart of one series: a row per bar, its label on the left, its value
/// after it.
pub fn bar_chart(text: &ChartText<'_>, bars: &[Bar]) -> String {
    let described = bars.iter().map(|bar| format!("{}: {}.", bar.label, bar.value)).collect::<Vec<_>>().join(" ");
    let mut svg = String::new();
    open(&mut svg, text, &described, TOP, bars.len(), ROW);
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0);
    if bars.is_empty() {
        nothing(&mut svg, TOP);
    }
    for (row, bar) in (0u32..).zip(bars) {
        let y = TOP + row * ROW;
        let width = length(bar.value, max, WIDTH - LABEL_WIDTH - VALUE_ROOM);
        let _ = write!(
            svg,
            "<g class=\"bar\"><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>\
             <rect x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{width}\" height=\"{BAR_HEIGHT}\" fill=\"{BAR}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{INK}\">{}</text></g>",
            LABEL_WIDTH - 6,
            y + 12,
            escape(&bar.label),
            LABEL_WIDTH + width + 4,
            y + 12,
            bar.value,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A horizontal stacked bar chart of checks per day: allowed, then refused, with both
/// figures written after the bar and a legend above.
pub fn checks_chart(text: &ChartText<'_>, days: &[DayChecks]) -> String {
    let described = days
        .iter()
        .map(|day| format!("{}: {} allowed, {} refused.", day.day, day.allowed, day.refused))
        .collect::<Vec<_>>()
        .join(" ");
    let top = TOP + 22;
    let mut svg = String::new();
    open(&mut svg, text, &described, top, days.len(), CHECKS_ROW);
    let _ = write!(
        svg,
        "<g class=\"legend\"><rect x=\"{LABEL_WIDTH}\" y=\"4\" width=\"12\" height=\"12\" fill=\"{ALLOWED}\"/>\
         <text x=\"{}\" y=\"14\" fill=\"{INK}\">allowed</text>\
         <rect x=\"{}\" y=\"4\" width=\"12\" height=\"12\" fill=\"{REFUSED}\"/>\
         <text x=\"{}\" y=\"14\" fill=\"{INK}\">refused</text></g>",
        LABEL_WIDTH + 16,
        LABEL_WIDTH + 80,
        LABEL_WIDTH + 96,
    );
    let max = days.iter().map(|day| day.allowed.saturating_add(day.refused)).max().unwrap_or(0);
    if days.is_empty() {
        nothing(&mut svg, top);
    }
    for (row, day) in (0u32..).zip(days) {
        let y = top + row * CHECKS_ROW;
        let room = WIDTH - LABEL_WIDTH - CHECKS_ROOM;
        let total = length(day.allowed.saturating_add(day.refused), max, room);
        let allowed = length(day.allowed, max, room).min(total);
        let refused = total - allowed;
        let _ = write!(
            svg,
            "<g class=\"bar\"><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>\
             <rect x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{allowed}\" height=\"{BAR_HEIGHT}\" fill=\"{ALLOWED}\"/>\
             <rect x=\"{}\" y=\"{y}\" width=\"{refused}\" height=\"{BAR_HEIGHT}\" fill=\"{REFUSED}\"/>\
             <text x=\"{LABEL_WIDTH}\" y=\"{}\" fill=\"{INK}\" font-size=\"12\">{} allowed · {} refused</text></g>",
            LABEL_WIDTH - 6,
            y + 12,
            escape(&day.day),
            LABEL_WIDTH + allowed,
            y + BAR_HEIGHT + 13,
            day.allowed,
            day.refused,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The age buckets, in days: a bucket holds ages from its bound up to the next one's.
const AGE_BUCKETS: [(u64, &str); 5] =
    [(0, "under 30 days"), (30, "30–89 days"), (90, "90–179 days"), (180, "180–364 days"), (365, "a year or more")];

/// Keys counted by age in whole days, in the buckets a rotation policy reads: under 30,
/// 30–89, 90–179 (older than the 90-day review period), 180–364, a year or more. Every
/// bucket is listed, empty ones too, so charts compare at a glance.
pub fn keys_by_age(ages_in_days: impl IntoIterator<Item = u64>) -> Vec<Bar> {
    let mut counts = [0u64; AGE_BUCKETS.len()];
    for age in ages_in_days {
        let bucket = AGE_BUCKETS.iter().rposition(|(from, _)| age >= *from).unwrap_or(0);
        counts[bucket] += 1;
    }
    AGE_BUCKETS.iter().zip(counts).map(|((_, label), value)| Bar { label: (*label).to_owned(), value }).collect()
}

/// The last-use buckets: never used, then by whole days since the last recorded use.
const USE_BUCKETS: [(u64, &str); 5] =
    [(0, "today"), (1, "1–6 days ago"), (7, "7–29 days ago"), (30, "30–89 days ago"), (90, "90+ days ago")];

const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

/// Whole days from `from` to `to`; 0 when `to` is not after `from`.
fn days_between(from: Timestamp, to: Timestamp) -> u64 {
    u64::try_from(to.unix_millis().saturating_sub(from.unix_millis()).max(0) / MILLIS_PER_DAY).unwrap_or(0)
}

/// Keys counted by their last recorded use, judged at `now`: never, then within a day,
/// 1–6 days, 7–29, 30–89, and 90 days ago or more (unused for the review period). Every
/// bucket is listed.
pub fn keys_by_last_use(now: Timestamp, last_used: impl IntoIterator<Item = Option<Timestamp>>) -> Vec<Bar> {
    let mut never = 0u64;
    let mut counts = [0u64; USE_BUCKETS.len()];
    for used in last_used {
        match used {
            None => never += 1,
            Some(at) => {
                let days = days_between(at, now);
                let bucket = USE_BUCKETS.iter().rposition(|(from, _)| days >= *from).unwrap_or(0);
                counts[bucket] += 1;
            }
        }
    }
    std::iter::once(Bar { label: "never".to_owned(), value: never })
        .chain(USE_BUCKETS.iter().zip(counts).map(|((_, label), value)| Bar { label: (*label).to_owned(), value }))
        .collect()
}

/// The UTC day a time falls on, as days since 1970-01-01 (negative before).
fn day_number(at: Timestamp) -> i64 {
    at.unix_millis().div_euclid(MILLIS_PER_DAY)
}

/// The `YYYY-MM-DD` of a day number.
fn day_name(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(|at| {
            let date = at.date();
            format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
        })
        .unwrap_or_else(|_| day.to_string())
}

/// Checks per UTC day over the `days` days ending with the day of `now`, oldest first, from
/// `(time, allowed, refused)` counts; every day is listed, days with no count as zero, and
/// counts outside the window are left out. A usage record counts a key's checks over an
/// interval: the caller gives the time of the last of them, so an interval that spans
/// midnight counts on the later day.
pub fn checks_per_day(
    now: Timestamp,
    days: usize,
    counts: impl IntoIterator<Item = (Timestamp, u64, u64)>,
) -> Vec<DayChecks> {
    let last = day_number(now);
    let span = i64::try_from(days).unwrap_or(i64::MAX);
    let first = last.saturating_sub(span.saturating_sub(1));
    let mut totals = vec![(0u64, 0u64); days];
    for (at, allowed, refused) in counts {
        let day = day_number(at);
        if (first..=last).contains(&day) {
            let slot = &mut totals[usize::try_from(day - first).unwrap_or(0)];
            slot.0 = slot.0.saturating_add(allowed);
            slot.1 = slot.1.saturating_add(refused);
        }
    }
    (first..).zip(totals).map(|(day, (allowed, refused))| DayChecks { day: day_name(day), allowed, refused }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: ChartText<'static> = ChartText { id: "age", title: "Keys by age", summary: "Working keys." };

    fn bars(values: &[(&str, u64)]) -> Vec<Bar> {
        values.iter().map(|(label, value)| Bar { label: (*label).to_owned(), value: *value }).collect()
    }

    /// The `width` of every `<rect>` in the order drawn.
    fn rect_widths(svg: &str) -> Vec<u32> {
        svg.split("<rect ")
            .skip(1)
            .filter_map(|rect| rect.split("width=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .filter_map(|width| width.parse().ok())
            .collect()
    }

    #[test]
    fn a_bar_chart_is_an_image_labelled_by_its_title_and_description() {
        let svg = bar_chart(&TEXT, &bars(&[("under 30 days", 3), ("a year or more", 1)]));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"age-title age-desc\""));
        assert!(svg.contains("<title id=\"age-title\">Keys by age</title>"));
        assert!(svg.contains("<desc id=\"age-desc\">Working keys. under 30 days: 3. a year or more: 1.</desc>"));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<script"), "no script in a chart");
        assert!(!svg.contains("style="), "no inline style, which a strict CSP would block");
    }

    #[test]
    fn every_bar_writes_its_label_and_value_as_text() {
        let svg = bar_chart(&TEXT, &bars(&[("never", 0), ("today", 12)]));
        assert!(svg.contains(">never</text>"));
        assert!(svg.contains(">0</text>"));
        assert!(svg.contains(">today</text>"));
        assert!(svg.contains(">12</text>"));
    }

    #[test]
    fn bars_are_as_long_as_their_values_relative_to_the_largest() {
        let widths = rect_widths(&bar_chart(&TEXT, &bars(&[("a", 10), ("b", 5), ("c", 0), ("d", 1_000_000)])));
        let room = WIDTH - LABEL_WIDTH - VALUE_ROOM;
        assert_eq!(widths.len(), 4);
        assert_eq!(widths[3], room, "the largest value fills the room");
        assert_eq!(widths[2], 0, "zero draws nothing");
        assert_eq!(widths[1], 1, "a tiny value still shows");
        assert!(widths[0] >= widths[1]);
    }

    #[test]
    fn an_all_zero_or_empty_chart_draws_no_bar_and_says_so_when_empty() {
        assert!(rect_widths(&bar_chart(&TEXT, &bars(&[("a", 0), ("b", 0)]))).iter().all(|width| *width == 0));
        let empty = bar_chart(&TEXT, &[]);
        assert!(empty.contains("Nothing recorded yet."));
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let text = ChartText { id: "x\"y", title: "<b>&", summary: "'" };
        let svg = bar_chart(&text, &bars(&[("<script>alert(1)</script>", 1)]));
        assert!(!svg.contains("<script>"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("x&quot;y-title"));
        assert!(svg.contains("&lt;b&gt;&amp;"));
    }

    #[test]
    fn the_checks_chart_stacks_allowed_and_refused_and_names_both_in_words() {
        let days = vec![
            DayChecks { day: "2027-01-30".into(), allowed: 30, refused: 10 },
            DayChecks { day: "2027-01-31".into(), allowed: 0, refused: 0 },
        ];
        let text = ChartText { id: "checks", title: "Checks per day", summary: "From usage records." };
        let svg = checks_chart(&text, &days);
        assert!(svg.contains(">allowed</text>") && svg.contains(">refused</text>"), "a legend in words");
        assert!(svg.contains(">30 allowed · 10 refused</text>"));
        assert!(svg.contains(">0 allowed · 0 refused</text>"));
        assert!(svg.contains("2027-01-30: 30 allowed, 10 refused."));
        // Legend swatches, then per day the allowed and refused parts.
        let widths = rect_widths(&svg);
        let room = WIDTH - LABEL_WIDTH - CHECKS_ROOM;
        assert_eq!(&widths[2..], &[room * 3 / 4, room - room * 3 / 4, 0, 0]);
    }

    #[test]
    fn keys_fall_in_the_age_bucket_of_their_whole_days() {
        let counted = keys_by_age([0, 29, 30, 89, 90, 179, 180, 364, 365, 4000]);
        let values: Vec<u64> = counted.iter().map(|bar| bar.value).collect();
        assert_eq!(values, [2, 2, 2, 2, 2]);
        assert_eq!(counted[2].label, "90–179 days");
        assert_eq!(keys_by_age([]).iter().map(|bar| bar.value).sum::<u64>(), 0);
        assert_eq!(keys_by_age([]).len(), 5, "empty buckets are listed");
    }

    #[test]
    fn keys_fall_in_the_bucket_of_their_last_use_and_never_used_keys_apart() {
        let day = MILLIS_PER_DAY;
        let now = Timestamp::from_unix_millis(1000 * day);
        let ago = |days: i64| Some(Timestamp::from_unix_millis(1000 * day - days * day));
        let counted = keys_by_last_use(now, [None, None, ago(0), ago(1), ago(6), ago(7), ago(30), ago(89), ago(90)]);
        let values: Vec<(String, u64)> = counted.into_iter().map(|bar| (bar.label, bar.value)).collect();
        assert_eq!(
            values,
            [
                ("never".to_owned(), 2),
                ("today".to_owned(), 1),
                ("1–6 days ago".to_owned(), 2),
                ("7–29 days ago".to_owned(), 1),
                ("30–89 days ago".to_owned(), 2),
                ("90+ days ago".to_owned(), 1),
            ]
        );
        // A use recorded a little after `now` (clocks) counts as today, not as a panic.
        let later = keys_by_last_use(now, [Some(Timestamp::from_unix_millis(1000 * day + 5))]);
        assert_eq!(later[1].value, 1);
    }

    #[test]
    fn checks_are_summed_per_utc_day_over_a_window_ending_today() {
        // 2027-01-31T12:00:00Z.
        let now = Timestamp::parse("2027-01-31T12:00:00Z").unwrap();
        let at = |text: &str| Timestamp::parse(text).unwrap();
        let counted = checks_per_day(
            now,
            3,
            [
                (at("2027-01-31T00:00:00Z"), 5, 1),
                (at("2027-01-31T11:59:59Z"), 5, 0),
                (at("2027-01-30T23:59:59.999Z"), 7, 2),
                (at("2027-01-28T23:59:59Z"), 100, 100),
                (at("2027-02-01T00:00:00Z"), 100, 100),
            ],
        );
        assert_eq!(
            counted,
            vec![
                DayChecks { day: "2027-01-29".into(), allowed: 0, refused: 0 },
                DayChecks { day: "2027-01-30".into(), allowed: 7, refused: 2 },
                DayChecks { day: "2027-01-31".into(), allowed: 10, refused: 1 },
            ]
        );
        assert!(checks_per_day(now, 0, [(now, 1, 1)]).is_empty());
    }
}
