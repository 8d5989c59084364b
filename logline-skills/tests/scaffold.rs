//! The Telegram bot scaffold: a zip artifact that unpacks to a Python project whose files
//! compile (`python3 -m py_compile`), whatever text the caller put in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use logline_core::artifact::ArtifactStore;
use logline_core::owner::Owner;
use logline_core::testing::ScriptedLlm;
use logline_core::tool::ToolHub;
use logline_core::ErrorKind;
use serde_json::json;
use support::*;
use uuid::Uuid;

fn unpack(zip_bytes: &[u8]) -> (PathBuf, Vec<PathBuf>) {
    let dir = std::env::temp_dir().join(format!("logline-scaffold-{}", Uuid::now_v7()));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let relative = entry.enclosed_name().expect("no entry escapes the folder");
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).unwrap();
        std::fs::write(&path, contents).unwrap();
        files.push(path);
    }
    (dir, files)
}

#[tokio::test]
async fn scaffold_zip_unpacks_to_a_project_that_compiles() {
    let f = fixture(ScriptedLlm::new());
    let ctx = ctx(dan());
    // Quotes, backslashes, braces, newlines and non-Latin text in every field.
    let out = f
        .hub
        .execute(
            "scaffold.telegram_bot",
            json!({
                "name": "Café \"Order\" Bot",
                "description": "Takes orders.\n\"\"\" breaks docstrings {ABOUT} {COMMANDS}",
                "commands": [
                    {"command": "menu", "description": "Today's menu", "reply": "Καφές: 2€\nTea: 1€ \\ \"quoted\" {x}"},
                    {"command": "hours_2", "reply": "'''\nimport os; os.system('rm -rf /')\n'''"}
                ]
            }),
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(out["executed"], false);
    let id: Uuid = serde_json::from_value(out["artifact"]["id"].clone()).unwrap();
    let (meta, bytes) = f.artifacts.get(&Owner::from(&dan()), id).await.unwrap();
    assert_eq!(meta.content_type, "application/zip");
    assert_eq!(meta.name, "caf_order_bot.zip");
    assert_eq!(meta.task_id, ctx.run_id);

    let (dir, files) = unpack(&bytes);
    let py: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    assert_eq!(py.len(), 4, "{files:?}");
    let status = Command::new("python3")
        .args(["-m", "py_compile"])
        .args(&py)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "generated Python does not compile");
    // The replies are data: the handler table holds them as literals, read back by Python.
    let handlers = dir.join("caf_order_bot/bot/handlers.py");
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            "import ast,sys\n\
             tree = ast.parse(open(sys.argv[1]).read())\n\
             table = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == 'COMMANDS'][0]\n\
             print(repr(ast.literal_eval(table.value)['hours_2'][1]))",
        )
        .arg(&handlers)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("os.system"));
    let requirements = std::fs::read_to_string(dir.join("caf_order_bot/requirements.txt")).unwrap();
    assert!(requirements.contains("python-telegram-bot"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_commands_are_refused() {
    let f = fixture(ScriptedLlm::new());
    for commands in [
        json!([{"command": "../x", "reply": "r"}]),
        json!([{"command": "Menu", "reply": "r"}]),
        json!([{"command": "start", "reply": "r"}]),
        json!([{"command": "a", "reply": "r"}, {"command": "a", "reply": "s"}]),
        json!([{"command": "a", "reply": "r", "exec": "x"}]),
    ] {
        let e = f
            .hub
            .execute(
                "scaffold.telegram_bot",
                json!({"name": "bot", "commands": commands}),
                &ctx(dan()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{commands}: {e}");
    }
    let listed = f
        .artifacts
        .list(&Owner::from(&dan()), &Default::default())
        .await
        .unwrap();
    assert!(listed.is_empty());
}
