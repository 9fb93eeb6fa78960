//! What each API call costs from the company's daily token budget
//! (reference §10; the numbers are the OpenAPI files' `x-token-cost`).

/// Operations whose cost differs from the rule of their kind (below), as
/// the OpenAPI files give them: (method, path template, tokens).
const EXCEPTIONS: &[(&str, &str, u32)] = &[
    ("GET", "/api/v2/boards/{id}", 10),
    ("GET", "/api/v2/deals/archived", 20),
    ("POST", "/api/v2/deals/{id}/convert/lead", 40),
    ("DELETE", "/api/v2/deals/{id}/products", 15),
    ("POST", "/api/v2/deals/{id}/products/bulk", 25),
    ("POST", "/api/v2/leads/{id}/convert/deal", 40),
    ("GET", "/api/v2/persons/{id}/picture", 1),
    ("GET", "/api/v2/phases/{id}", 10),
    ("GET", "/api/v2/pipelines", 5),
    ("DELETE", "/api/v2/products/{id}/images", 6),
    ("POST", "/api/v2/products/{id}/images", 20),
    ("PUT", "/api/v2/products/{id}/images", 20),
    ("POST", "/api/v2/projects/{id}/archive", 3),
    ("GET", "/api/v2/projects/{id}/permittedUsers", 5),
    ("GET", "/api/v2/stages", 5),
    ("DELETE", "/v1/dealFields", 10),
    ("GET", "/v1/deals/archived", 40),
    ("GET", "/v1/deals/summary", 40),
    ("GET", "/v1/deals/summary/archived", 80),
    ("GET", "/v1/deals/timeline/archived", 40),
    ("GET", "/v1/deals/{id}/flow", 40),
    ("PUT", "/v1/deals/{id}/merge", 40),
    ("GET", "/v1/deals/{id}/participants", 10),
    ("GET", "/v1/deals/{id}/participantsChangelog", 10),
    ("GET", "/v1/deals/{id}/permittedUsers", 10),
    ("DELETE", "/v1/filters", 10),
    ("GET", "/v1/goals/find", 20),
    ("GET", "/v1/leadLabels", 10),
    ("GET", "/v1/leadSources", 2),
    ("GET", "/v1/leads/archived", 40),
    ("GET", "/v1/leads/{id}/permittedUsers", 10),
    ("GET", "/v1/legacyTeams/user/{id}", 20),
    ("DELETE", "/v1/legacyTeams/{id}/users", 10),
    ("GET", "/v1/mailbox/mailThreads/{id}", 20),
    ("DELETE", "/v1/organizationFields", 10),
    ("GET", "/v1/organizations/{id}/flow", 40),
    ("PUT", "/v1/organizations/{id}/merge", 40),
    ("GET", "/v1/organizations/{id}/permittedUsers", 10),
    ("DELETE", "/v1/personFields", 10),
    ("GET", "/v1/persons/{id}/flow", 40),
    ("PUT", "/v1/persons/{id}/merge", 40),
    ("GET", "/v1/persons/{id}/permittedUsers", 10),
    ("GET", "/v1/pipelines/{id}/conversion_statistics", 40),
    ("GET", "/v1/pipelines/{id}/movement_statistics", 40),
    ("DELETE", "/v1/productFields", 10),
    ("GET", "/v1/products/{id}/permittedUsers", 10),
    ("GET", "/v1/roles/{id}/assignments", 10),
    ("GET", "/v1/userSettings", 2),
    ("GET", "/v1/users/me", 2),
    ("GET", "/v1/users/{id}/permissions", 10),
    ("GET", "/v1/users/{id}/roleAssignments", 10),
    ("GET", "/v1/users/{id}/roleSettings", 10),
    ("GET", "/v1/webhooks", 10),
];

/// The tokens one call of `method` on `path_template` costs: `/api/v2/…`
/// (v2) or `/v1/…` and `/api/v1/…` (v1), with `{…}` for path parameters,
/// e.g. `GET /api/v2/persons/{id}`. Known exceptions first, then the rule
/// of the kind: v2 get 1, list 10, create/update 5, delete 3, search 20;
/// v1 get 2, list 20, create/update 10, delete 6, search 40. OAuth calls
/// cost nothing.
pub fn token_cost(method: &str, path_template: &str) -> u32 {
    let method = method.to_ascii_uppercase();
    let (v2, rest) = match path_template.strip_prefix("/api/v2") {
        Some(rest) => (true, rest),
        None => (
            false,
            path_template
                .strip_prefix("/api/v1")
                .or_else(|| path_template.strip_prefix("/v1"))
                .unwrap_or(path_template),
        ),
    };
    if rest.starts_with("/oauth") {
        return 0;
    }
    let normalised = format!("{}{rest}", if v2 { "/api/v2" } else { "/v1" });
    if let Some((_, _, cost)) = EXCEPTIONS
        .iter()
        .find(|(m, p, _)| *m == method && *p == normalised)
    {
        return *cost;
    }
    let search = rest.to_ascii_lowercase().contains("search");
    let one = rest.ends_with('}');
    match (v2, method.as_str()) {
        (true, _) if search => 20,
        (true, "GET") if one => 1,
        (true, "GET") => 10,
        (true, "DELETE") => 3,
        (true, _) => 5,
        (false, _) if search || rest.ends_with("/find") => 40,
        (false, "GET") if one => 2,
        (false, "GET") => 20,
        (false, "DELETE") => 6,
        (false, _) => 10,
    }
}

#[cfg(test)]
mod tests {
    use super::token_cost;

    /// Every operation of Pipedrive's OpenAPI files costs what the file says.
    #[test]
    fn every_documented_operation_costs_its_x_token_cost() {
        let spec = pipedrive_sandbox::spec::spec().expect("the OpenAPI files parse");
        let mut checked = 0;
        for op in spec.operations.iter().filter(|op| !op.is_oauth()) {
            let label = op.label();
            let (method, path) = label.split_once(' ').expect("METHOD /path");
            assert_eq!(
                u64::from(token_cost(method, path)),
                op.token_cost,
                "{label}"
            );
            checked += 1;
        }
        assert!(checked > 300, "{checked} operations");
        assert_eq!(token_cost("get", "/api/v1/users/me"), 2);
        assert_eq!(token_cost("POST", "/oauth/token"), 0);
    }
}
