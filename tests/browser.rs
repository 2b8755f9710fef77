//! The built-in web pages (`/` and the operator view `/admin`) in a real
//! browser. Runs the node test suites in `tests/browser/` (playwright-core
//! driving Debian's chromium) against the strand binary cargo just built. A missing browser, node or npm package
//! fails this test: it never skips.

use std::path::Path;
use std::process::Command;

#[test]
fn heavy_web_page_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = root.join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (.ci/test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: `apt-get install chromium` (.ci/test does)"
    );
    let status = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(&browser)
        .current_dir(root)
        .env("STRAND_BIN", env!("CARGO_BIN_EXE_strand"))
        .status()
        .expect("run node (is it installed?)");
    assert!(status.success(), "the browser test failed: {status}");
}
