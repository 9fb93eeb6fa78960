//! Creates the template's table, queues and secrets on the local stack
//! (DynamoDB Local and moto) under a name prefix, and resolves the functions'
//! environment to them.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::template::{EnvValue, FunctionDef, SecretValue, Template, substitute};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("DynamoDB Local: {0}")]
    Dynamo(String),
    #[error("SQS (moto): {0}")]
    Sqs(String),
    #[error("Secrets Manager (moto): {0}")]
    Secrets(String),
    #[error("the template refers to `{0}`, which is neither a resource nor a parameter")]
    UnknownReference(String),
}

/// What was created, by logical id: what `!Ref` and `!GetAtt` mean here.
#[derive(Debug, Clone)]
pub struct Stack {
    pub template: Template,
    pub prefix: String,
    pub table_name: String,
    pub queue_urls: BTreeMap<String, String>,
    /// Secret ARNs (a secret's `!Ref`).
    pub secret_ids: BTreeMap<String, String>,
    /// `!Ref` of every resource and parameter.
    pub refs: BTreeMap<String, String>,
    /// `!GetAtt Logical.Attribute` values (queue `Arn` and `QueueName`,
    /// table `Arn`).
    pub attributes: BTreeMap<String, String>,
}

impl Stack {
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.queue_urls.get(logical_id).map(String::as_str)
    }

    /// A function's environment as Lambda would give it: its template
    /// variables, resolved to the local resources.
    pub fn function_env(
        &self,
        function: &FunctionDef,
    ) -> Result<BTreeMap<String, String>, ProvisionError> {
        function
            .environment
            .iter()
            .map(|(key, value)| {
                let resolved = match value {
                    EnvValue::Literal(v) => v.clone(),
                    EnvValue::Ref(target) => self
                        .refs
                        .get(target)
                        .cloned()
                        .ok_or_else(|| ProvisionError::UnknownReference(target.clone()))?,
                };
                Ok((key.clone(), resolved))
            })
            .collect()
    }
}

fn err<E: std::error::Error>(e: E) -> String {
    // Include the service's own message, not just "service error".
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Creates everything under `prefix`. `parameters` fill the template's
/// parameters (those with defaults may be left out). `visibility_timeout`
/// replaces the queues' own, so that tests can watch redelivery and
/// dead-lettering happen in seconds rather than minutes.
pub async fn provision(
    aws: &aws_config::SdkConfig,
    template: Template,
    prefix: &str,
    parameters: &BTreeMap<String, String>,
    visibility_timeout: Option<i64>,
) -> Result<Stack, ProvisionError> {
    let mut params = template.parameter_defaults.clone();
    params.extend(parameters.clone());
    params.insert("AWS::StackName".into(), prefix.to_owned());

    // Table.
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let table_name = format!("{prefix}-{}", template.table.logical_id);
    let mut create = dynamo
        .create_table()
        .table_name(&table_name)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in &template.table.attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(|e| ProvisionError::Dynamo(err(e)))?,
        );
    }
    let key_schema = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(name, kind)| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(KeyType::from(kind.as_str()))
                    .build()
                    .map_err(|e| ProvisionError::Dynamo(err(e)))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    create = create.set_key_schema(Some(key_schema(&template.table.key_schema)?));
    for index in &template.table.global_secondary_indexes {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.as_str()))
                        .build(),
                )
                .build()
                .map_err(|e| ProvisionError::Dynamo(err(e)))?,
        );
    }
    let table_arn = create
        .send()
        .await
        .map_err(|e| ProvisionError::Dynamo(err(e)))?
        .table_description
        .and_then(|t| t.table_arn)
        .ok_or_else(|| ProvisionError::Dynamo("no table ARN".into()))?;
    let mut refs = params.clone();
    let mut attributes = BTreeMap::new();
    refs.insert(template.table.logical_id.clone(), table_name.clone());
    attributes.insert(format!("{}.Arn", template.table.logical_id), table_arn);

    // Queues: dead-letter queues first, so the others can point at them.
    let sqs = aws_sdk_sqs::Client::new(aws);
    let mut queue_urls = BTreeMap::new();
    let mut queue_arns: BTreeMap<String, String> = BTreeMap::new();
    let mut ordered = template.queues.clone();
    ordered.sort_by_key(|q| q.redrive.is_some());
    for queue in &ordered {
        let name = format!(
            "{prefix}-{}{}",
            queue.logical_id,
            if queue.fifo { ".fifo" } else { "" }
        );
        let mut queue_attributes = std::collections::HashMap::new();
        let mut attribute = |key: QueueAttributeName, value: String| {
            queue_attributes.insert(key, value);
        };
        if queue.fifo {
            attribute(QueueAttributeName::FifoQueue, "true".into());
            attribute(
                QueueAttributeName::ContentBasedDeduplication,
                queue.content_based_deduplication.to_string(),
            );
        }
        if let Some(v) = visibility_timeout.or(queue.visibility_timeout) {
            attribute(QueueAttributeName::VisibilityTimeout, v.to_string());
        }
        if let Some(v) = queue.retention {
            attribute(QueueAttributeName::MessageRetentionPeriod, v.to_string());
        }
        if let Some((dlq, max_receives)) = &queue.redrive {
            let arn = queue_arns
                .get(dlq)
                .ok_or_else(|| ProvisionError::UnknownReference(dlq.clone()))?;
            attribute(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string() })
                    .to_string(),
            );
        }
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(queue_attributes))
            .send()
            .await
            .map_err(|e| ProvisionError::Sqs(err(e)))?
            .queue_url
            .ok_or_else(|| ProvisionError::Sqs("no queue URL".into()))?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| ProvisionError::Sqs(err(e)))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| ProvisionError::Sqs("no queue ARN".into()))?;
        attributes.insert(format!("{}.Arn", queue.logical_id), arn.clone());
        attributes.insert(format!("{}.QueueName", queue.logical_id), name.clone());
        refs.insert(queue.logical_id.clone(), url.clone());
        queue_arns.insert(queue.logical_id.clone(), arn);
        queue_urls.insert(queue.logical_id.clone(), url);
    }

    // Secrets.
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    let mut secret_ids = BTreeMap::new();
    for secret in &template.secrets {
        let name = format!("{prefix}-{}", secret.logical_id);
        let value = match &secret.value {
            SecretValue::Generated { length } => rand::rng()
                .sample_iter(&Alphanumeric)
                .take(*length)
                .map(char::from)
                .collect(),
            SecretValue::Template(text) => substitute(text, &params),
        };
        let arn = secrets
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| ProvisionError::Secrets(err(e)))?
            .arn
            .ok_or_else(|| ProvisionError::Secrets("no secret ARN".into()))?;
        // A secret's !Ref is its ARN.
        refs.insert(secret.logical_id.clone(), arn.clone());
        secret_ids.insert(secret.logical_id.clone(), arn);
    }

    Ok(Stack {
        template,
        prefix: prefix.to_owned(),
        table_name,
        queue_urls,
        secret_ids,
        refs,
        attributes,
    })
}

/// Reads a secret's value (the operator key for the demo and tests).
pub async fn secret_value(
    aws: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<String, ProvisionError> {
    aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| ProvisionError::Secrets(err(e)))?
        .secret_string
        .ok_or_else(|| ProvisionError::Secrets("no SecretString".into()))
}
