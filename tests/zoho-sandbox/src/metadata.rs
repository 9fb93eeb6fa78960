//! Module and field metadata of the seeded org (`/settings/modules`,
//! `/settings/fields`), shaped like a fresh Zoho CRM org.
//!
//! The OAS marks ~80 keys of a field and ~60 keys of a module as required, so
//! every entry starts from a template (`templates/*.json`, generated once from
//! the OAS with neutral defaults) and overrides what matters.

use serde_json::{Map, Value, json};

const FIELD_TEMPLATE: &str = include_str!("templates/field.json");
const MODULE_TEMPLATE: &str = include_str!("templates/module.json");

/// Compact description of a field; expanded by [`Fd::to_json`].
#[derive(Debug, Clone)]
pub struct Fd {
    pub api_name: &'static str,
    pub label: &'static str,
    pub data_type: &'static str,
    pub length: u32,
    pub mandatory: bool,
    pub read_only: bool,
    pub custom: bool,
    pub unique: bool,
    pub picks: &'static [&'static str],
    pub lookup: Option<&'static str>,
}

const fn f(
    api_name: &'static str,
    label: &'static str,
    data_type: &'static str,
    length: u32,
) -> Fd {
    Fd {
        api_name,
        label,
        data_type,
        length,
        mandatory: false,
        read_only: false,
        custom: false,
        unique: false,
        picks: &[],
        lookup: None,
    }
}

impl Fd {
    const fn mandatory(mut self) -> Self {
        self.mandatory = true;
        self
    }
    const fn ro(mut self) -> Self {
        self.read_only = true;
        self
    }
    const fn custom(mut self) -> Self {
        self.custom = true;
        self
    }
    const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    const fn picks(mut self, p: &'static [&'static str]) -> Self {
        self.picks = p;
        self
    }
    const fn lookup(mut self, m: &'static str) -> Self {
        self.lookup = Some(m);
        self
    }

    fn json_type(&self) -> &'static str {
        json_type_for(self.api_name, self.data_type)
    }

    /// Expands into the full metadata object `GET /settings/fields` returns.
    pub fn to_json(&self, id: &str, lookup_module_id: Option<&str>) -> Value {
        self.expand(id, lookup_module_id)
    }
}

/// Zoho's `json_type` for a field (Tag is `text` but a JSON array).
pub fn json_type_for(api_name: &str, data_type: &str) -> &'static str {
    match (api_name, data_type) {
        ("Tag", _) => "jsonarray",
        (_, "multiselectpicklist" | "imageupload" | "fileupload" | "multiselectlookup") => {
            "jsonarray"
        }
        (_, "lookup" | "ownerlookup" | "userlookup") => "jsonobject",
        (_, "boolean") => "boolean",
        (_, "integer" | "bigint") => "integer",
        (_, "double" | "currency" | "percent") => "double",
        _ => "string",
    }
}

impl Fd {
    fn expand(&self, id: &str, lookup_module_id: Option<&str>) -> Value {
        let mut v: Value = serde_json::from_str(FIELD_TEMPLATE).unwrap_or_else(|_| json!({}));
        let Some(o) = v.as_object_mut() else {
            return v;
        };
        let writable = !self.read_only;
        let set = |o: &mut Map<String, Value>, k: &str, val: Value| {
            o.insert(k.to_string(), val);
        };
        set(o, "api_name", json!(self.api_name));
        set(o, "display_label", json!(self.label));
        set(o, "field_label", json!(self.label));
        set(o, "column_name", json!(self.api_name.to_ascii_uppercase()));
        set(o, "data_type", json!(self.data_type));
        set(o, "json_type", json!(self.json_type()));
        set(o, "length", json!(self.length));
        set(o, "id", json!(id));
        set(o, "system_mandatory", json!(self.mandatory));
        set(o, "read_only", json!(self.read_only));
        set(o, "field_read_only", json!(self.read_only));
        set(o, "custom_field", json!(self.custom));
        set(o, "visible", json!(true));
        set(o, "virtual_field", json!(false));
        set(o, "searchable", json!(true));
        set(o, "sortable", json!(true));
        set(o, "filterable", json!(true));
        set(o, "mass_update", json!(writable));
        set(
            o,
            "created_source",
            json!(if self.custom { "custom" } else { "default" }),
        );
        set(o, "type", json!("used"));
        set(o, "display_type", json!(-1));
        set(o, "ui_type", json!(1));
        set(
            o,
            "operation_type",
            json!({"web_update": writable, "api_create": writable, "web_create": writable, "api_update": writable}),
        );
        set(
            o,
            "view_type",
            json!({"view": true, "edit": writable, "quick_create": false, "create": writable}),
        );
        set(
            o,
            "email_parser",
            json!({"fields_update_supported": false, "record_operations_supported": false}),
        );
        set(o, "hipaa_compliance_enabled", json!(false));
        set(
            o,
            "textarea",
            if self.data_type == "textarea" {
                json!({"type": "large"})
            } else {
                json!({})
            },
        );
        set(
            o,
            "unique",
            if self.unique {
                json!({"casesensitive": "false"})
            } else {
                json!({})
            },
        );
        let picks: Vec<Value> = self
            .picks
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"display_value": p, "actual_value": p, "id": format!("{id}{i:03}"),
                       "sequence_number": i + 1, "type": "used", "colour_code": null})
            })
            .collect();
        set(o, "pick_list_values", Value::Array(picks));
        if let Some(target) = self.lookup {
            set(
                o,
                "lookup",
                json!({"display_label": self.label, "api_name": self.api_name,
                       "module": {"api_name": target, "id": lookup_module_id.unwrap_or_default()},
                       "id": id, "query_details": {}, "revalidate_filter_during_edit": false,
                       "show_fields": []}),
            );
        }
        v
    }
}

const LEAD_SOURCES: &[&str] = &[
    "-None-",
    "Advertisement",
    "Cold Call",
    "Employee Referral",
    "External Referral",
    "Online Store",
    "Partner",
    "Public Relations",
    "Sales Email Alias",
    "Seminar Partner",
    "Internal Seminar",
    "Trade Show",
    "Web Download",
    "Web Research",
    "Chat",
    "WhatsApp",
];
const LEAD_STATUS: &[&str] = &[
    "-None-",
    "Attempted to Contact",
    "Contact in Future",
    "Contacted",
    "Junk Lead",
    "Lost Lead",
    "Not Contacted",
    "Pre-Qualified",
    "Not Qualified",
];
const INDUSTRY: &[&str] = &[
    "-None-",
    "ASP (Application Service Provider)",
    "Data/Telecom OEM",
    "ERP (Enterprise Resource Planning)",
    "Government/Military",
    "Large Enterprise",
    "Management ISV",
    "Retail",
    "Services",
];
const SALUTATION: &[&str] = &["-None-", "Mr.", "Mrs.", "Ms.", "Dr.", "Prof."];
const INTERESTS: &[&str] = &["Product A", "Product B", "Support plan"];
const STAGES: &[&str] = &[
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
const ACCOUNT_TYPES: &[&str] = &[
    "-None-",
    "Analyst",
    "Competitor",
    "Customer",
    "Distributor",
    "Integrator",
    "Investor",
    "Partner",
    "Press",
    "Prospect",
    "Reseller",
    "Other",
];
const RECORD_STATUS: &[&str] = &["Available", "Draft", "Trash"];

fn common_system_fields() -> Vec<Fd> {
    vec![
        f("Owner", "Lead Owner", "ownerlookup", 120).lookup("users"),
        f("Created_By", "Created By", "ownerlookup", 120).ro(),
        f("Modified_By", "Modified By", "ownerlookup", 120).ro(),
        f("Created_Time", "Created Time", "datetime", 120).ro(),
        f("Modified_Time", "Modified Time", "datetime", 120).ro(),
        f("Tag", "Tag", "text", 2000),
        f("Record_Status__s", "Record Status", "picklist", 120)
            .ro()
            .picks(RECORD_STATUS),
    ]
}

/// Fields of a module (owned copy; the store lets tests add more at runtime).
pub fn default_fields(module: &str) -> Vec<Fd> {
    let mut v = match module {
        "Leads" => vec![
            f("Salutation", "Salutation", "picklist", 120).picks(SALUTATION),
            f("First_Name", "First Name", "text", 40),
            f("Last_Name", "Last Name", "text", 80).mandatory(),
            f("Full_Name", "Full Name", "text", 120).ro(),
            f("Company", "Company", "text", 200),
            f("Designation", "Title", "text", 100),
            f("Email", "Email", "email", 100).unique(),
            f("Secondary_Email", "Secondary Email", "email", 100),
            f("Phone", "Phone", "phone", 30),
            f("Mobile", "Mobile", "phone", 30),
            f("Fax", "Fax", "text", 30),
            f("Website", "Website", "website", 255),
            f("Lead_Source", "Lead Source", "picklist", 120).picks(LEAD_SOURCES),
            f("Lead_Status", "Lead Status", "picklist", 120).picks(LEAD_STATUS),
            f("Industry", "Industry", "picklist", 120).picks(INDUSTRY),
            f("No_of_Employees", "No. of Employees", "integer", 16),
            f("Annual_Revenue", "Annual Revenue", "currency", 16),
            f("Email_Opt_Out", "Email Opt Out", "boolean", 5),
            f("Street", "Street", "text", 250),
            f("City", "City", "text", 100),
            f("State", "State", "text", 100),
            f("Zip_Code", "Zip Code", "text", 30),
            f("Country", "Country", "text", 100),
            f("Description", "Description", "textarea", 32000),
            f("Record_Image", "Lead Image", "profileimage", 255),
            f(
                "Product_Interest",
                "Product Interest",
                "multiselectpicklist",
                2000,
            )
            .custom()
            .picks(INTERESTS),
            f("Lead_Photo", "Lead Photo", "imageupload", 255).custom(),
            f("WhatsApp_Chat", "WhatsApp Chat", "website", 255).custom(),
            f("Converted__s", "Converted", "boolean", 5).ro(),
            f(
                "Converted_Date_Time",
                "Converted Date Time",
                "datetime",
                120,
            )
            .ro(),
            f("Converted_Contact", "Converted Contact", "lookup", 120)
                .ro()
                .lookup("Contacts"),
            f("Converted_Account", "Converted Account", "lookup", 120)
                .ro()
                .lookup("Accounts"),
            f("Converted_Deal", "Converted Deal", "lookup", 120)
                .ro()
                .lookup("Deals"),
        ],
        "Contacts" => vec![
            f("Salutation", "Salutation", "picklist", 120).picks(SALUTATION),
            f("First_Name", "First Name", "text", 40),
            f("Last_Name", "Last Name", "text", 80).mandatory(),
            f("Full_Name", "Full Name", "text", 120).ro(),
            f("Account_Name", "Account Name", "lookup", 120).lookup("Accounts"),
            f("Email", "Email", "email", 100).unique(),
            f("Secondary_Email", "Secondary Email", "email", 100),
            f("Phone", "Phone", "phone", 30),
            f("Mobile", "Mobile", "phone", 30),
            f("Home_Phone", "Home Phone", "phone", 30),
            f("Other_Phone", "Other Phone", "phone", 30),
            f("Asst_Phone", "Asst Phone", "phone", 30),
            f("Fax", "Fax", "text", 30),
            f("Title", "Title", "text", 100),
            f("Department", "Department", "text", 100),
            f("Date_of_Birth", "Date of Birth", "date", 20),
            f("Lead_Source", "Lead Source", "picklist", 120).picks(LEAD_SOURCES),
            f("Reporting_To", "Reporting To", "lookup", 120).lookup("Contacts"),
            f("Email_Opt_Out", "Email Opt Out", "boolean", 5),
            f("Mailing_Street", "Mailing Street", "text", 250),
            f("Mailing_City", "Mailing City", "text", 100),
            f("Mailing_Zip", "Mailing Zip", "text", 30),
            f("Mailing_Country", "Mailing Country", "text", 100),
            f("Description", "Description", "textarea", 32000),
            f("Record_Image", "Contact Image", "profileimage", 255),
            f(
                "Product_Interest",
                "Product Interest",
                "multiselectpicklist",
                2000,
            )
            .custom()
            .picks(INTERESTS),
            f("WhatsApp_Chat", "WhatsApp Chat", "website", 255).custom(),
        ],
        "Accounts" => vec![
            f("Account_Name", "Account Name", "text", 200).mandatory(),
            f("Account_Number", "Account Number", "bigint", 40),
            f("Account_Type", "Account Type", "picklist", 120).picks(ACCOUNT_TYPES),
            f("Industry", "Industry", "picklist", 120).picks(INDUSTRY),
            f("Phone", "Phone", "phone", 30),
            f("Fax", "Fax", "text", 30),
            f("Website", "Website", "website", 255),
            f("Parent_Account", "Parent Account", "lookup", 120).lookup("Accounts"),
            f("Annual_Revenue", "Annual Revenue", "currency", 16),
            f("Employees", "Employees", "integer", 9),
            f("Billing_Street", "Billing Street", "text", 250),
            f("Billing_City", "Billing City", "text", 100),
            f("Billing_Country", "Billing Country", "text", 100),
            f("Description", "Description", "textarea", 32000),
        ],
        "Deals" => vec![
            f("Deal_Name", "Deal Name", "text", 120).mandatory(),
            f("Stage", "Stage", "picklist", 120)
                .mandatory()
                .picks(STAGES),
            f("Amount", "Amount", "currency", 16),
            f("Closing_Date", "Closing Date", "date", 20),
            f("Account_Name", "Account Name", "lookup", 120).lookup("Accounts"),
            f("Contact_Name", "Contact Name", "lookup", 120).lookup("Contacts"),
            f("Probability", "Probability (%)", "integer", 3),
            f("Lead_Source", "Lead Source", "picklist", 120).picks(LEAD_SOURCES),
            f("Description", "Description", "textarea", 32000),
        ],
        "Notes" => {
            // Notes have their own system fields; return early.
            return vec![
                f("Owner", "Note Owner", "ownerlookup", 120).lookup("users"),
                f("Note_Title", "Note Title", "text", 120),
                f("Note_Content", "Note Content", "textarea", 32000),
                f("Parent_Id", "Parent ID", "lookup", 120),
                f("Created_By", "Created By", "ownerlookup", 120).ro(),
                f("Modified_By", "Modified By", "ownerlookup", 120).ro(),
                f("Created_Time", "Created Time", "datetime", 120).ro(),
                f("Modified_Time", "Modified Time", "datetime", 120).ro(),
            ];
        }
        _ => return Vec::new(),
    };
    v.extend(common_system_fields());
    v
}

/// Static description of a module.
#[derive(Debug, Clone)]
pub struct ModuleDef {
    pub api_name: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub api_supported: bool,
    pub generated_type: &'static str,
    pub creatable: bool,
}

pub const MODULES: &[ModuleDef] = &[
    ModuleDef {
        api_name: "Leads",
        singular: "Lead",
        plural: "Leads",
        api_supported: true,
        generated_type: "default",
        creatable: true,
    },
    ModuleDef {
        api_name: "Contacts",
        singular: "Contact",
        plural: "Contacts",
        api_supported: true,
        generated_type: "default",
        creatable: true,
    },
    ModuleDef {
        api_name: "Accounts",
        singular: "Account",
        plural: "Accounts",
        api_supported: true,
        generated_type: "default",
        creatable: true,
    },
    ModuleDef {
        api_name: "Deals",
        singular: "Deal",
        plural: "Deals",
        api_supported: true,
        generated_type: "default",
        creatable: true,
    },
    ModuleDef {
        api_name: "Notes",
        singular: "Note",
        plural: "Notes",
        api_supported: true,
        generated_type: "default",
        creatable: true,
    },
    // Not reachable through the API (like Zoho's "Visits" web-analytics module).
    ModuleDef {
        api_name: "Visits",
        singular: "Visit",
        plural: "Visits",
        api_supported: false,
        generated_type: "web",
        creatable: false,
    },
    // Linking module behind a multi-select lookup.
    ModuleDef {
        api_name: "Contacts_X_Deals",
        singular: "Contacts X Deals",
        plural: "Contacts X Deals",
        api_supported: true,
        generated_type: "linking",
        creatable: true,
    },
];

/// `GET /settings/modules` entry.
pub fn module_json(def: &ModuleDef, id: &str, seq: usize, admin: &Value) -> Value {
    let mut v: Value = serde_json::from_str(MODULE_TEMPLATE).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        let vis = def.generated_type != "linking" && def.api_supported;
        for (k, val) in [
            ("api_name", json!(def.api_name)),
            ("module_name", json!(def.api_name)),
            ("singular_label", json!(def.singular)),
            ("plural_label", json!(def.plural)),
            ("id", json!(id)),
            ("api_supported", json!(def.api_supported)),
            ("generated_type", json!(def.generated_type)),
            ("creatable", json!(def.creatable)),
            ("editable", json!(def.creatable)),
            ("deletable", json!(def.creatable)),
            ("viewable", json!(true)),
            ("visible", json!(vis)),
            ("show_as_tab", json!(vis)),
            ("visibility", json!(1)),
            ("convertable", json!(def.api_name == "Leads")),
            ("quick_create", json!(def.creatable)),
            ("sequence_number", json!(seq)),
            ("global_search_supported", json!(def.api_supported)),
            ("modified_time", json!(null)),
            ("modified_by", admin.clone()),
            (
                "profiles",
                json!([{"name": "Administrator", "id": "5725767000000026011"}, {"name": "Standard", "id": "5725767000000026014"}]),
            ),
            ("$properties", json!([])),
            ("per_page", json!(200)),
        ] {
            o.insert(k.to_string(), val);
        }
    }
    v
}
