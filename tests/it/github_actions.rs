//! GitHub Actions conventions and generated workflows, checked with actionlint.
