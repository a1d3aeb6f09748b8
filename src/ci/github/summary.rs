//! The release step summary: what a release did (images, platforms, checks), rendered as the
//! Markdown table shipit appends to `$GITHUB_STEP_SUMMARY`.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// What a release did, as the step summary shows it (filled by the release stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    pub version: String,
    pub images: Vec<ImageSummary>,
}

/// One multi-arch image (one libc variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    pub variant: String,
    pub repository: String,
    /// `sha256:<hex>` of the index.
    pub index_digest: String,
    /// Tags moved to the index, in the order they moved (empty: none moved).
    pub tags_moved: Vec<String>,
    pub platforms: Vec<PlatformSummary>,
}

/// One platform image of an index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformSummary {
    /// OCI platform, e.g. `linux/arm/v7`.
    pub platform: String,
    /// `sha256:<hex>` of the platform manifest.
    pub digest: String,
    /// Compressed size in bytes (config + layers + manifest).
    pub size: u64,
    pub checks: Vec<CheckSummary>,
    /// Wall time spent on this platform (build to verified), in seconds.
    pub seconds: f64,
}

/// One verification check and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub name: String,
    pub passed: bool,
    pub seconds: f64,
}

/// The step summary: a heading, then per image its index digest, the tags moved, and a table
/// with one row per platform (digest, compressed size, checks, time).
pub fn summary_markdown(release: &ReleaseSummary) -> String {
    let mut md = format!("## shipit release {}\n", cell(&release.version));
    if release.images.is_empty() {
        md.push_str("\nNo image was released.\n");
    }
    for img in &release.images {
        let _ = writeln!(
            md,
            "\n### `{}` ({})\n",
            cell(&img.repository),
            cell(&img.variant)
        );
        let tags = if img.tags_moved.is_empty() {
            "none (nothing was tagged)".to_string()
        } else {
            img.tags_moved
                .iter()
                .map(|t| format!("`{}`", cell(t)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "Index `{}` · tags moved: {tags}\n",
            short_digest(&img.index_digest)
        );
        md.push_str("| platform | digest | compressed size | checks | time |\n");
        md.push_str("|---|---|--:|---|--:|\n");
        for p in &img.platforms {
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {} | {} |",
                cell(&p.platform),
                short_digest(&p.digest),
                human_size(p.size),
                checks_cell(&p.checks),
                human_seconds(p.seconds)
            );
        }
    }
    md
}

/// `sha256:` and the first 12 hex digits (what `docker images` shows), or the text as given.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => cell(d),
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn human_seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let total = s.round() as u64;
        format!("{} min {:02} s", total / 60, total % 60)
    }
}

fn checks_cell(checks: &[CheckSummary]) -> String {
    if checks.is_empty() {
        return "none".into();
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| cell(&c.name))
        .collect();
    if failed.is_empty() {
        format!("{passed} passed")
    } else {
        format!(
            "{passed} passed, **{} failed** ({})",
            failed.len(),
            failed.join(", ")
        )
    }
}

/// Makes text safe inside a Markdown table cell or code span: no line breaks, no `|`, no backtick.
fn cell(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
        .replace('|', "\\|")
        .replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
        assert_eq!(short_digest(""), "");
        assert_eq!(human_seconds(75.4), "1 min 15 s");
        assert_eq!(human_seconds(0.44), "0.4 s");
    }

    fn sample() -> ReleaseSummary {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        ReleaseSummary {
            version: "1.4.0".into(),
            images: vec![
                ImageSummary {
                    variant: "gnu".into(),
                    repository: "ghcr.io/acme/hello-server".into(),
                    index_digest: d('a'),
                    tags_moved: vec!["1.4.0".into(), "1.4".into(), "1".into(), "latest".into()],
                    platforms: vec![
                        PlatformSummary {
                            platform: "linux/amd64".into(),
                            digest: d('1'),
                            size: 3_407_872,
                            checks: vec![
                                CheckSummary {
                                    name: "version".into(),
                                    passed: true,
                                    seconds: 0.21,
                                },
                                CheckSummary {
                                    name: "serves".into(),
                                    passed: true,
                                    seconds: 1.4,
                                },
                            ],
                            seconds: 41.0,
                        },
                        PlatformSummary {
                            platform: "linux/arm/v7".into(),
                            digest: d('2'),
                            size: 3_100_000,
                            checks: vec![CheckSummary {
                                name: "version".into(),
                                passed: true,
                                seconds: 0.9,
                            }],
                            seconds: 95.5,
                        },
                    ],
                },
                ImageSummary {
                    variant: "musl".into(),
                    repository: "ghcr.io/acme/hello-server".into(),
                    index_digest: d('b'),
                    tags_moved: vec![],
                    platforms: vec![PlatformSummary {
                        platform: "linux/arm/v6".into(),
                        digest: d('3'),
                        size: 900,
                        checks: vec![
                            CheckSummary {
                                name: "version".into(),
                                passed: true,
                                seconds: 0.3,
                            },
                            CheckSummary {
                                name: "a|b".into(),
                                passed: false,
                                seconds: 20.0,
                            },
                        ],
                        seconds: 12.0,
                    }],
                },
            ],
        }
    }

    #[test]
    fn summary_markdown_snapshot() {
        insta::assert_snapshot!(summary_markdown(&sample()));
    }

    #[test]
    fn summary_round_trips_through_json() {
        let s = sample();
        let json = serde_json::to_string(&s).unwrap();
        let back: ReleaseSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
    }
}
