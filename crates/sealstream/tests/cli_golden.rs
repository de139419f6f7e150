//! Golden tests: exact messages and exit codes of the CLI, including every
//! bad-input case (trycmd cases in tests/cmd/*.toml, run in a sandboxed copy
//! of tests/cmd/data). Refresh with `TRYCMD=overwrite cargo test -p sealstream --test cli_golden`
//! and review the diff.

#[test]
fn golden() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}
