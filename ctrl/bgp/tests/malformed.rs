//! The malformed-message corpus (`bgp::testing`): each case gets its exact
//! RFC 4271 §6 / RFC 7606 reaction, from the decoder and from the FSM.

mod common;

use std::collections::HashSet;

use bgp::fsm::{Input, Output, State};
use bgp::testing::{malformed_corpus, reaction, Expected, When};
use common::*;

#[test]
fn corpus_has_at_least_30_uniquely_named_cases() {
    let corpus = malformed_corpus();
    assert!(corpus.len() >= 30, "{} cases", corpus.len());
    let names: HashSet<_> = corpus.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), corpus.len());
}

#[test]
fn corpus_cases_frame_like_a_stream() {
    // A raw-TCP replay relies on the length field: every case is either
    // exactly as long as its length field says or fails at the header.
    for c in malformed_corpus() {
        match bgp::split_message(&c.bytes) {
            Ok(Some((m, rest))) => {
                assert_eq!(m.len(), c.bytes.len(), "{}", c.name);
                assert!(rest.is_empty(), "{}", c.name);
            }
            Ok(None) => panic!("{}: incomplete", c.name),
            Err(_) => {}
        }
    }
}

#[test]
fn decoder_gives_each_case_its_rfc_reaction() {
    let mut failures = Vec::new();
    for c in malformed_corpus() {
        let got = reaction(&c);
        if got != c.expected {
            failures.push(format!("{}: got {got:?}, want {:?}", c.name, c.expected));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fsm_gives_each_case_its_rfc_reaction() {
    let mut failures = Vec::new();
    for c in malformed_corpus() {
        let mut s = match c.when {
            When::InsteadOfOpen => open_sent(0),
            When::Established => established(0),
        };
        let mut out = Vec::new();
        s.process(1, Input::Received(&c.bytes), &mut out);
        let notification = sent_notification(&out);
        let ok = match &c.expected {
            Expected::Notification {
                code,
                subcode,
                data,
            } => {
                notification
                    .as_ref()
                    .is_some_and(|n| n.code == *code && n.subcode == *subcode && n.data == *data)
                    && out.contains(&Output::CloseTcp)
                    && s.state() == State::Idle
            }
            Expected::CloseSilently => {
                notification.is_none()
                    && out.contains(&Output::CloseTcp)
                    && s.state() == State::Idle
            }
            Expected::TreatAsWithdraw(p) => {
                notification.is_none()
                    && s.state() == State::Established
                    && out.iter().any(|o| {
                        matches!(o,
                        Output::TreatAsWithdraw { prefixes, .. } if prefixes == p)
                    })
            }
            Expected::AttributeDiscard {
                type_code,
                remaining,
            } => {
                notification.is_none()
                    && s.state() == State::Established
                    && out.iter().any(|o| {
                        matches!(o,
                        Output::UpdateReceived(u) if u.attributes.iter()
                            .filter(|a| a.type_code() == *type_code).count() == *remaining)
                    })
            }
        };
        if !ok {
            failures.push(format!("{}: want {:?}, got {out:?}", c.name, c.expected));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
