//! The served spec is the checked-in spec, and it names every fixed operation.
//!
//! `KEYLEDGER_UPDATE_OPENAPI=1 cargo test --test it openapi` rewrites
//! `openapi/openapi.json` from the server (as does `cargo run -- openapi`).

use serde_json::Value;

use crate::helpers::spawn_app;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

const FIXED_OPERATIONS: [&str; 29] = [
    "listFunctions",
    "createRole",
    "listRoles",
    "getRole",
    "activateFunctions",
    "deactivateFunctions",
    "createUser",
    "listUsers",
    "getUser",
    "disableUser",
    "enableUser",
    "assignRole",
    "unassignRole",
    "createEventGroup",
    "addEventToGroup",
    "removeEventFromGroup",
    "setUserEventAccess",
    "generateKey",
    "revokeKey",
    "checkKey",
    "authorizeRequest",
    "listAuditEvents",
    "verifyAuditLog",
    "getPermissionsAt",
    "whoCan",
    "diffPermissions",
    "health",
    "healthLive",
    "healthReady",
];

#[test]
fn the_served_spec_equals_the_checked_in_copy() {
    let app = spawn_app();
    let served = app.raw("GET", "/openapi.json", &[], None);
    served.expect(200);
    let served: Value = served.json();
    if std::env::var_os("KEYLEDGER_UPDATE_OPENAPI").is_some() {
        let mut text = serde_json::to_string_pretty(&served).unwrap();
        text.push('\n');
        std::fs::write(CHECKED_IN, text).unwrap();
    }
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(CHECKED_IN).unwrap()).unwrap();
    assert!(
        served == checked_in,
        "openapi/openapi.json is out of date: run `KEYLEDGER_UPDATE_OPENAPI=1 cargo test --test it openapi`"
    );
}

#[test]
fn the_spec_is_openapi_3_and_has_every_fixed_operation() {
    let app = spawn_app();
    let spec = app.raw("GET", "/openapi.json", &[], None).json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let operation_ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    for fixed in FIXED_OPERATIONS {
        assert!(operation_ids.contains(&fixed), "{fixed} is missing from the spec");
    }
}

#[test]
fn the_docs_ui_is_served_without_any_external_address() {
    let app = spawn_app();
    for asset in ["/docs/", "/docs/swagger-initializer.js"] {
        let page = app.raw("GET", asset, &[], None);
        page.expect(200);
        assert!(!page.body.contains("https://") && !page.body.contains("http://"), "{asset} links outside");
    }
    assert!(app.raw("GET", "/docs/swagger-initializer.js", &[], None).body.contains("\"/openapi.json\""));
}
