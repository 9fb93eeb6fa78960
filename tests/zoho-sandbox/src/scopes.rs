//! OAuth scopes (reference §1.1): what a grant may call. Zoho checks each
//! CRM call against the scopes its token was granted and answers
//! `401 OAUTH_SCOPE_MISMATCH` otherwise (§1.8), so a client asking for
//! fewer scopes gets fewer calls.
//!
//! A scope is `Service.scope.OPERATION`: `ZohoCRM.modules.ALL`,
//! `ZohoCRM.modules.leads.READ`, `ZohoCRM.users.READ`. A call needs one
//! grant among the scopes that cover it (the service-wide one, e.g.
//! `ZohoCRM.modules`, or the narrower one, e.g. `ZohoCRM.modules.leads`),
//! with its operation or `ALL`.

/// What a grant that was given no scope list may do (tokens minted by the
/// test shortcut): everything the sandbox serves.
pub const EVERYTHING: &[&str] = &[
    "ZohoCRM.modules.ALL",
    "ZohoCRM.settings.ALL",
    "ZohoCRM.users.ALL",
    "ZohoCRM.org.ALL",
    "ZohoSearch.securesearch.READ",
];

/// The scopes of an authorization request's `scope` (comma or space
/// separated, as Zoho takes both).
pub fn parse(list: &str) -> Vec<String> {
    list.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One thing a call needs: any of `prefixes` with `operation` (or `ALL`).
struct Need {
    prefixes: Vec<String>,
    operation: &'static str,
}

fn operation(method: &str) -> &'static str {
    match method.to_ascii_uppercase().as_str() {
        "GET" => "READ",
        "POST" => "CREATE",
        "PUT" | "PATCH" => "UPDATE",
        "DELETE" => "DELETE",
        _ => "ALL",
    }
}

/// `ZohoCRM.modules` and `ZohoCRM.modules.<module>` (custom modules:
/// `ZohoCRM.modules.custom`).
fn module_prefixes(module: &str) -> Vec<String> {
    let narrow = if module.ends_with("__c") {
        "custom".to_owned()
    } else {
        module.to_ascii_lowercase()
    };
    vec![
        "ZohoCRM.modules".to_owned(),
        format!("ZohoCRM.modules.{narrow}"),
    ]
}

fn needs(method: &str, path: &str) -> Vec<Need> {
    let op = operation(method);
    let need = |prefixes: Vec<String>, operation: &'static str| Need {
        prefixes,
        operation,
    };
    let one = |p: &str| vec![p.to_owned()];
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .skip(2) // crm, v8
        .collect();
    match segs.as_slice() {
        ["users", ..] => vec![need(one("ZohoCRM.users"), op)],
        ["org", ..] => vec![need(one("ZohoCRM.org"), op)],
        ["settings", kind, ..] => vec![need(
            vec![
                "ZohoCRM.settings".to_owned(),
                format!("ZohoCRM.settings.{kind}"),
            ],
            op,
        )],
        [module, "search"] => vec![
            need(module_prefixes(module), "READ"),
            need(one("ZohoSearch.securesearch"), "READ"),
        ],
        [_, _, "Notes"] | ["Notes", ..] => vec![need(module_prefixes("notes"), op)],
        [_, _, "Attachments"] => vec![need(module_prefixes("attachments"), op)],
        // Converting changes the lead and makes its records.
        [module, _, "actions", "convert"] => vec![need(module_prefixes(module), "UPDATE")],
        [module, ..] => vec![need(module_prefixes(module), op)],
        [] => Vec::new(),
    }
}

fn grants(granted: &[String], need: &Need) -> bool {
    granted.iter().any(|scope| {
        scope.rsplit_once('.').is_some_and(|(prefix, op)| {
            need.prefixes.iter().any(|p| p.eq_ignore_ascii_case(prefix))
                && (op.eq_ignore_ascii_case("ALL") || op.eq_ignore_ascii_case(need.operation))
        })
    })
}

/// Whether `granted` covers the CRM call `method path` (`/crm/v8/…`).
pub fn allows(granted: &[String], method: &str, path: &str) -> bool {
    needs(method, path).iter().all(|need| grants(granted, need))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &str) -> Vec<String> {
        parse(list)
    }

    #[test]
    fn identity_scopes_read_the_user_and_org_and_nothing_else() {
        let sign_in = scopes("ZohoCRM.users.READ,ZohoCRM.org.READ");
        assert!(allows(&sign_in, "GET", "/crm/v8/users"));
        assert!(allows(&sign_in, "GET", "/crm/v8/org"));
        assert!(!allows(&sign_in, "GET", "/crm/v8/Leads/1"));
        assert!(!allows(&sign_in, "GET", "/crm/v8/settings/fields"));
        assert!(!allows(&sign_in, "POST", "/crm/v8/Leads"));
    }

    #[test]
    fn service_wide_and_module_scopes_cover_their_calls() {
        let product = scopes(
            "ZohoCRM.modules.ALL,ZohoSearch.securesearch.READ,ZohoCRM.modules.notes.ALL,ZohoCRM.modules.attachments.ALL,ZohoCRM.users.READ,ZohoCRM.org.READ,ZohoCRM.settings.modules.READ,ZohoCRM.settings.fields.READ",
        );
        for (method, path) in [
            ("GET", "/crm/v8/Leads/search"),
            ("POST", "/crm/v8/Leads"),
            ("PUT", "/crm/v8/Contacts/1"),
            ("POST", "/crm/v8/Leads/1/Notes"),
            ("PUT", "/crm/v8/Notes/9"),
            ("POST", "/crm/v8/Leads/1/Attachments"),
            ("POST", "/crm/v8/Leads/1/actions/convert"),
            ("GET", "/crm/v8/settings/modules"),
            ("GET", "/crm/v8/settings/fields"),
            ("GET", "/crm/v8/users"),
        ] {
            assert!(allows(&product, method, path), "{method} {path}");
        }
        let leads_read = scopes("ZohoCRM.modules.leads.READ");
        assert!(allows(&leads_read, "GET", "/crm/v8/Leads/1"));
        assert!(!allows(&leads_read, "GET", "/crm/v8/Contacts/1"));
        assert!(!allows(&leads_read, "PUT", "/crm/v8/Leads/1"));
        assert!(
            !allows(&leads_read, "GET", "/crm/v8/Leads/search"),
            "search needs ZohoSearch too"
        );
        let everything: Vec<String> = EVERYTHING.iter().map(|s| (*s).to_owned()).collect();
        assert!(allows(&everything, "DELETE", "/crm/v8/Deals/1"));
    }
}
