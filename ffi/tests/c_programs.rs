//! The C programs in tests/c (and the complete example in docs/ffi.md) compiled against
//! include/viommu.h with `-Wall -Wextra -Werror`, linked with the static library, and run;
//! under valgrind too when it is installed (no errors, no definite leaks).
//!
//! The library is built from the current sources by `cargo build -p viommu-ffi` into a
//! directory of its own under target/tmp (see `static_library`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ffi/ has a parent")
        .to_path_buf()
}

/// libviommu.a built from the current sources. The package's lib has no rlib (it would
/// collide with the engine crate's libviommu.rlib), so `cargo test` does not build it for
/// integration tests: build it here, once per test binary.
fn static_library() -> PathBuf {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cargo");
            run(
                Command::new(cargo)
                    .args(["build", "--quiet", "-p", "viommu-ffi", "--target-dir"])
                    .arg(&target_dir)
                    .current_dir(workspace_root()),
                "building libviommu.a",
            );
            target_dir.join("debug/libviommu.a")
        })
        .clone()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Compile `source`, run it, and run it under valgrind if there is one.
fn compile_and_run(name: &str, source: &Path) {
    let root = workspace_root();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_programs");
    std::fs::create_dir_all(&out_dir).expect("the output directory");
    let binary = out_dir.join(name);
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    run(
        Command::new(&compiler)
            .args(["-std=c11", "-g", "-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(root.join("include"))
            .arg("-I")
            .arg(root.join("ffi/tests/c"))
            .arg(source)
            .arg(static_library())
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&binary),
        &format!("compiling {}", source.display()),
    );
    run(&mut Command::new(&binary), &format!("running {name}"));
    if on_path("valgrind") {
        run(
            Command::new("valgrind")
                .args([
                    "--quiet",
                    "--error-exitcode=1",
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite",
                ])
                .arg(&binary),
            &format!("running {name} under valgrind"),
        );
    }
}

#[test]
fn scenario() {
    compile_and_run("scenario", &workspace_root().join("ffi/tests/c/scenario.c"));
}

#[test]
fn misuse() {
    compile_and_run("misuse", &workspace_root().join("ffi/tests/c/misuse.c"));
}

#[test]
fn topology() {
    compile_and_run("topology", &workspace_root().join("ffi/tests/c/topology.c"));
}

/// The guide's complete example is the fenced C block that starts with its file comment.
#[test]
fn docs_example() {
    let guide = std::fs::read_to_string(workspace_root().join("docs/ffi.md")).expect("docs/ffi.md");
    let start = guide
        .find("```c\n/* example.c")
        .expect("docs/ffi.md has a ```c block starting with /* example.c")
        + "```c\n".len();
    let length = guide[start..]
        .find("\n```")
        .expect("the example block is closed");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_programs");
    std::fs::create_dir_all(&out_dir).expect("the output directory");
    let source = out_dir.join("example.c");
    std::fs::write(&source, &guide[start..start + length + 1]).expect("example.c written");
    compile_and_run("example", &source);
}

/// The header is also valid C++ (it has the `extern "C"` guards).
#[test]
fn header_compiles_as_cpp() {
    if !on_path("c++") {
        return;
    }
    let root = workspace_root();
    run(
        Command::new("c++")
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-x", "c++"])
            .arg(root.join("include/viommu.h")),
        "compiling include/viommu.h as C++",
    );
}
