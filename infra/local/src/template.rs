//! Reads `infra/template.yaml`: the one definition of the table, queues,
//! secrets, function environment, routes and queue triggers, so the local
//! stack cannot drift from what is deployed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template: {0}")]
    Read(#[from] std::io::Error),
    #[error("the template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("the template does not say {0}")]
    Missing(String),
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub logical_id: String,
    /// (name, type) of each key attribute definition.
    pub attributes: Vec<(String, String)>,
    /// (name, HASH|RANGE).
    pub key_schema: Vec<(String, String)>,
    pub global_secondary_indexes: Vec<IndexDef>,
}

#[derive(Debug, Clone)]
pub struct IndexDef {
    pub name: String,
    /// (name, HASH|RANGE).
    pub key_schema: Vec<(String, String)>,
    /// ALL, KEYS_ONLY or INCLUDE.
    pub projection: String,
}

#[derive(Debug, Clone)]
pub struct QueueDef {
    pub logical_id: String,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub visibility_timeout: Option<i64>,
    pub retention: Option<i64>,
    /// (logical id of the dead-letter queue, maxReceiveCount).
    pub redrive: Option<(String, i64)>,
}

#[derive(Debug, Clone)]
pub enum SecretValue {
    /// `GenerateSecretString`: a random value of this length.
    Generated { length: usize },
    /// `SecretString` with `${Parameter}` placeholders.
    Template(String),
}

#[derive(Debug, Clone)]
pub struct SecretDef {
    pub logical_id: String,
    pub value: SecretValue,
}

/// A value in the template: a literal, or a reference to a resource or parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    Ref(String),
}

#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    pub binary: String,
    /// Globals.Function.Environment with the function's own on top: exactly
    /// what Lambda gives it.
    pub environment: BTreeMap<String, EnvValue>,
    /// Its `Timeout` (else the Globals'), in seconds; Lambda's default is 3.
    pub timeout_secs: u64,
    /// Its `MemorySize` (else the Globals'), in MB; Lambda's default is 128.
    pub memory_mb: u64,
    /// (METHOD, path pattern) per HttpApi event.
    pub http_routes: Vec<(String, String)>,
    /// (queue logical id, batch size) of its SQS event, if any.
    pub sqs_trigger: Option<(String, i32)>,
    pub reports_batch_item_failures: bool,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub table: TableDef,
    pub queues: Vec<QueueDef>,
    pub secrets: Vec<SecretDef>,
    pub functions: Vec<FunctionDef>,
    pub parameter_defaults: BTreeMap<String, String>,
}

/// The resource a `!Ref X`, `!GetAtt X.Arn`, `{Ref: X}` or
/// `{Fn::GetAtt: [X, Arn]}` points at.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let target = tagged.value.as_str()?;
            match tag {
                "Ref" => Some(target.to_owned()),
                "GetAtt" => target.split('.').next().map(str::to_owned),
                _ => None,
            }
        }
        Value::Mapping(map) => {
            if let Some(target) = map.get("Ref").and_then(Value::as_str) {
                return Some(target.to_owned());
            }
            map.get("Fn::GetAtt")
                .and_then(Value::as_sequence)
                .and_then(|s| s.first())
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
        _ => None,
    }
}

fn sub_template(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == "Sub" => {
            tagged.value.as_str().map(str::to_owned)
        }
        Value::Mapping(map) => map
            .get("Fn::Sub")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// An `Environment.Variables` mapping.
fn environment(variables: &Value) -> BTreeMap<String, EnvValue> {
    variables
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let value = match reference(v) {
                Some(target) => EnvValue::Ref(target),
                None => EnvValue::Literal(scalar(v)?),
            };
            Some((k.as_str()?.to_owned(), value))
        })
        .collect()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value = serde_norway::from_str(text)?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::Missing("Resources".into()))?;
        let mut table = None;
        let mut queues = Vec::new();
        let mut secrets = Vec::new();
        let mut functions = Vec::new();
        let globals = &doc["Globals"]["Function"];
        let global_environment = environment(&globals["Environment"]["Variables"]);
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default().to_owned();
            let props = &resource["Properties"];
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::DynamoDB::Table" => {
                    let pairs = |list: &Value, a: &str, b: &str| -> Vec<(String, String)> {
                        list.as_sequence()
                            .into_iter()
                            .flatten()
                            .filter_map(|e| Some((scalar(&e[a])?, scalar(&e[b])?)))
                            .collect()
                    };
                    table = Some(TableDef {
                        logical_id: id,
                        attributes: pairs(
                            &props["AttributeDefinitions"],
                            "AttributeName",
                            "AttributeType",
                        ),
                        key_schema: pairs(&props["KeySchema"], "AttributeName", "KeyType"),
                        global_secondary_indexes: props["GlobalSecondaryIndexes"]
                            .as_sequence()
                            .into_iter()
                            .flatten()
                            .filter_map(|index| {
                                Some(IndexDef {
                                    name: scalar(&index["IndexName"])?,
                                    key_schema: pairs(
                                        &index["KeySchema"],
                                        "AttributeName",
                                        "KeyType",
                                    ),
                                    projection: scalar(&index["Projection"]["ProjectionType"])
                                        .unwrap_or_else(|| "ALL".into()),
                                })
                            })
                            .collect(),
                    });
                }
                "AWS::SQS::Queue" => {
                    let redrive = &props["RedrivePolicy"];
                    queues.push(QueueDef {
                        logical_id: id,
                        fifo: props["FifoQueue"].as_bool().unwrap_or(false),
                        content_based_deduplication: props["ContentBasedDeduplication"]
                            .as_bool()
                            .unwrap_or(false),
                        visibility_timeout: props["VisibilityTimeout"].as_i64(),
                        retention: props["MessageRetentionPeriod"].as_i64(),
                        redrive: reference(&redrive["deadLetterTargetArn"])
                            .zip(redrive["maxReceiveCount"].as_i64()),
                    });
                }
                "AWS::SecretsManager::Secret" => {
                    let value =
                        if let Some(generate) = props.get("GenerateSecretString") {
                            SecretValue::Generated {
                                length: generate["PasswordLength"].as_u64().unwrap_or(32) as usize,
                            }
                        } else {
                            SecretValue::Template(sub_template(&props["SecretString"]).ok_or_else(
                                || TemplateError::Missing(format!("{id}.SecretString")),
                            )?)
                        };
                    secrets.push(SecretDef {
                        logical_id: id,
                        value,
                    });
                }
                "AWS::Serverless::Function" => {
                    let binary = scalar(&resource["Metadata"]["BuildProperties"]["Binary"])
                        .ok_or_else(|| TemplateError::Missing(format!("{id} Binary")))?;
                    let mut http_routes = Vec::new();
                    let mut sqs_trigger = None;
                    let mut reports_batch_item_failures = false;
                    for (_, event) in props["Events"].as_mapping().into_iter().flatten() {
                        let ep = &event["Properties"];
                        match event["Type"].as_str().unwrap_or_default() {
                            "HttpApi" => http_routes.push((
                                scalar(&ep["Method"]).unwrap_or_default().to_uppercase(),
                                scalar(&ep["Path"]).unwrap_or_default(),
                            )),
                            "SQS" => {
                                let queue = reference(&ep["Queue"])
                                    .ok_or_else(|| TemplateError::Missing(format!("{id} queue")))?;
                                sqs_trigger =
                                    Some((queue, ep["BatchSize"].as_i64().unwrap_or(10) as i32));
                                reports_batch_item_failures = ep["FunctionResponseTypes"]
                                    .as_sequence()
                                    .into_iter()
                                    .flatten()
                                    .any(|t| t.as_str() == Some("ReportBatchItemFailures"));
                            }
                            _ => {}
                        }
                    }
                    let mut function_environment = global_environment.clone();
                    function_environment.extend(environment(&props["Environment"]["Variables"]));
                    let number = |key: &str, default: u64| {
                        props[key]
                            .as_u64()
                            .or_else(|| globals[key].as_u64())
                            .unwrap_or(default)
                    };
                    functions.push(FunctionDef {
                        logical_id: id,
                        binary,
                        environment: function_environment,
                        timeout_secs: number("Timeout", 3),
                        memory_mb: number("MemorySize", 128),
                        http_routes,
                        sqs_trigger,
                        reports_batch_item_failures,
                    });
                }
                _ => {}
            }
        }
        let parameter_defaults = doc["Parameters"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(&v["Default"])?)))
            .collect();
        Ok(Self {
            table: table.ok_or_else(|| TemplateError::Missing("a DynamoDB table".into()))?,
            queues,
            secrets,
            functions,
            parameter_defaults,
        })
    }
}

/// Replaces `${Name}` placeholders from `values`.
pub fn substitute(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../template.yaml");

    #[test]
    fn the_project_template_describes_table_queues_secrets_and_functions() {
        let t = Template::parse(TEMPLATE).expect("template parses");
        assert_eq!(t.table.key_schema.len(), 2);
        let indexes: Vec<&str> = t
            .table
            .global_secondary_indexes
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(indexes, ["ByChat", "ByState", "ByCrmUser"]);
        let sync = t
            .queues
            .iter()
            .find(|q| q.logical_id == "SyncQueue")
            .expect("sync queue");
        assert!(sync.fifo);
        assert_eq!(
            sync.redrive,
            Some((
                "SyncDeadLetterQueue".into(),
                i64::from(shared::config::DEFAULT_MAX_RECEIVE_COUNT)
            )),
            "the workers know the template's maxReceiveCount"
        );
        assert_eq!(t.functions.len(), 5);
        let webhook = t
            .functions
            .iter()
            .find(|f| f.binary == "webhook")
            .expect("webhook function");
        assert!(
            webhook
                .http_routes
                .contains(&("POST".into(), "/webhooks/whatsapp".into()))
        );
        let record_sync = t
            .functions
            .iter()
            .find(|f| f.binary == "record-sync")
            .expect("record-sync function");
        assert_eq!(record_sync.sqs_trigger, Some(("SyncQueue".into(), 10)));
        assert!(record_sync.reports_batch_item_failures);
        assert_eq!(
            webhook.environment.get("TABLE_NAME"),
            Some(&EnvValue::Ref("Table".into())),
            "Globals reach every function"
        );
        assert_eq!(
            webhook.environment.get("META_APP_SECRET_ID"),
            Some(&EnvValue::Ref("MetaAppSecret".into()))
        );
        assert!(
            !webhook.environment.contains_key("ZOHO_CLIENT_SECRET_ID"),
            "a function sees only its own configuration"
        );
        assert_eq!(webhook.timeout_secs, 30);
        assert!(
            t.secrets
                .iter()
                .any(|s| matches!(s.value, SecretValue::Template(_)))
        );
    }
}
