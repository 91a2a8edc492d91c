//! The UpsertWorkflowSearchAttributes and ModifyWorkflowProperties (memo) commands: stored on
//! the execution, shown by DescribeWorkflowExecution; and how their events change the state.

use std::collections::HashMap;

use temper_proto::temporal::api::command::v1::{
    ModifyWorkflowPropertiesCommandAttributes, UpsertWorkflowSearchAttributesCommandAttributes,
};
use temper_proto::temporal::api::common::v1::{Memo, Payload, SearchAttributes};
use temper_proto::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temper_proto::temporal::api::history::v1::{
    UpsertWorkflowSearchAttributesEventAttributes, WorkflowPropertiesModifiedEventAttributes,
};

use crate::events::At;
use crate::state::info_mut;
use crate::{BadCommand, Txn, pb};

/// Temporal's default limits on search attributes per workflow.
const MAX_SEARCH_ATTRIBUTES_BYTES: usize = 40 * 1024;
const MAX_SEARCH_ATTRIBUTE_VALUE_BYTES: usize = 2 * 1024;
/// Temporal's default memo size limit.
const MAX_MEMO_BYTES: usize = 2 * 1024 * 1024;

/// A search attribute value that unsets the attribute.
fn is_unset(p: &Payload) -> bool {
    p.data.is_empty() || p.data.as_slice() == b"null"
}

/// A memo value that stands for "no value": its key is removed.
fn is_nil(p: &Payload) -> bool {
    let encoding = p.metadata.get("encoding").map(Vec::as_slice);
    encoding == Some(b"binary/null".as_slice())
        || (encoding == Some(b"json/plain".as_slice()) && p.data.as_slice() == b"null")
        || p.data.is_empty() && encoding.is_none()
}

/// Merge upserted fields into `fields`: a nil value removes its key.
/// Merge upserted search attributes into the run's (an unset value removes the key).
pub(crate) fn merge_search_attributes(
    fields: &mut HashMap<String, Payload>,
    upsert: &HashMap<String, Payload>,
) {
    merge(fields, upsert, is_unset);
}

/// Merge an upserted memo into the run's (a nil value removes the key).
pub(crate) fn merge_memo(fields: &mut HashMap<String, Payload>, upsert: &HashMap<String, Payload>) {
    merge(fields, upsert, is_nil);
}

fn merge(
    fields: &mut HashMap<String, Payload>,
    upsert: &HashMap<String, Payload>,
    removes: fn(&Payload) -> bool,
) {
    for (k, v) in upsert {
        if removes(v) {
            fields.remove(k);
        } else {
            fields.insert(k.clone(), v.clone());
        }
    }
}

/// A memo as the Temporal server records it on a start, continue-as-new or child event:
/// nil values dropped, and absent when nothing is left.
pub(crate) fn recorded_memo(memo: &Option<Memo>) -> Option<Memo> {
    let fields: HashMap<String, Payload> = memo
        .as_ref()?
        .fields
        .iter()
        .filter(|(_, v)| !is_nil(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!fields.is_empty()).then_some(Memo { fields })
}

/// Search attributes as the Temporal server records them on those events: unset values
/// dropped, and absent when nothing is left.
pub(crate) fn recorded_search_attributes(
    attributes: &Option<SearchAttributes>,
) -> Option<SearchAttributes> {
    let indexed_fields: HashMap<String, Payload> = attributes
        .as_ref()?
        .indexed_fields
        .iter()
        .filter(|(_, v)| !is_unset(v) && v.data.as_slice() != b"[]")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!indexed_fields.is_empty()).then_some(SearchAttributes { indexed_fields })
}

fn size(fields: &HashMap<String, Payload>) -> usize {
    fields
        .iter()
        .map(|(k, v)| k.len() + prost::Message::encoded_len(v))
        .sum()
}

pub fn upsert_search_attributes(
    txn: &mut Txn<'_>,
    a: &UpsertWorkflowSearchAttributesCommandAttributes,
    wft_completed_event_id: i64,
    known_names: Option<&[String]>,
) -> Result<(), BadCommand> {
    let bad = |m: &str| {
        Err(BadCommand::new(
            WorkflowTaskFailedCause::BadSearchAttributes,
            m,
        ))
    };
    let Some(upsert) = a
        .search_attributes
        .as_ref()
        .filter(|s| !s.indexed_fields.is_empty())
    else {
        return bad("IndexedFields is empty on command.");
    };
    for (k, v) in &upsert.indexed_fields {
        if k.is_empty() {
            return bad("search attribute name is empty");
        }
        if let Some(known) = known_names
            && !known.iter().any(|n| n == k)
        {
            return bad(&format!(
                "BadSearchAttributes: search attribute {k} is not defined"
            ));
        }
        if v.data.len() > MAX_SEARCH_ATTRIBUTE_VALUE_BYTES {
            return bad(&format!(
                "search attribute {k} value size {} exceeds size limit {MAX_SEARCH_ATTRIBUTE_VALUE_BYTES}",
                v.data.len()
            ));
        }
    }
    let mut merged = txn.info().search_attributes.clone().unwrap_or_default();
    merge_search_attributes(&mut merged.indexed_fields, &upsert.indexed_fields);
    let total = size(&merged.indexed_fields);
    if total > MAX_SEARCH_ATTRIBUTES_BYTES {
        return bad(&format!(
            "total size of search attributes {total} exceeds size limit {MAX_SEARCH_ATTRIBUTES_BYTES}"
        ));
    }
    txn.write_applied(
        UpsertWorkflowSearchAttributesEventAttributes {
            workflow_task_completed_event_id: wft_completed_event_id,
            search_attributes: Some(SearchAttributes {
                indexed_fields: upsert.indexed_fields.clone(),
            }),
        },
        apply_search_attributes_upserted,
    );
    txn.visibility_task(crate::pb::VisibilityTaskKind::Upsert);
    Ok(())
}

pub fn modify_properties(
    txn: &mut Txn<'_>,
    a: &ModifyWorkflowPropertiesCommandAttributes,
    wft_completed_event_id: i64,
) -> Result<(), BadCommand> {
    let bad = |m: &str| {
        Err(BadCommand::new(
            WorkflowTaskFailedCause::BadModifyWorkflowPropertiesAttributes,
            m,
        ))
    };
    let Some(upsert) = a.upserted_memo.as_ref().filter(|m| !m.fields.is_empty()) else {
        return bad("UpsertedMemo.Fields is empty on command.");
    };
    let mut merged = txn.info().memo.clone().unwrap_or_default();
    merge_memo(&mut merged.fields, &upsert.fields);
    let total = size(&merged.fields);
    if total > MAX_MEMO_BYTES {
        return bad(&format!(
            "memo size {total} exceeds size limit {MAX_MEMO_BYTES}"
        ));
    }
    txn.write_applied(
        WorkflowPropertiesModifiedEventAttributes {
            workflow_task_completed_event_id: wft_completed_event_id,
            upserted_memo: Some(Memo {
                fields: upsert.fields.clone(),
            }),
        },
        apply_properties_modified,
    );
    txn.visibility_task(crate::pb::VisibilityTaskKind::Upsert);
    Ok(())
}

/// UpsertWorkflowSearchAttributes: the upserted attributes merged into the run's.
pub(crate) fn apply_search_attributes_upserted(
    ms: &mut pb::MutableState,
    _: At,
    a: &UpsertWorkflowSearchAttributesEventAttributes,
) {
    if let Some(upsert) = &a.search_attributes {
        let merged = info_mut(ms)
            .search_attributes
            .get_or_insert_with(Default::default);
        merge_search_attributes(&mut merged.indexed_fields, &upsert.indexed_fields);
    }
}

/// WorkflowPropertiesModified: the upserted memo merged into the run's.
pub(crate) fn apply_properties_modified(
    ms: &mut pb::MutableState,
    _: At,
    a: &WorkflowPropertiesModifiedEventAttributes,
) {
    if let Some(upsert) = &a.upserted_memo {
        let merged = info_mut(ms).memo.get_or_insert_with(Default::default);
        merge_memo(&mut merged.fields, &upsert.fields);
    }
}
