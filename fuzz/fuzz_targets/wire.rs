//! Arbitrary bytes as JSON into every wire type (`procwarden::api`): whatever parses must
//! serialize and parse back to an equal value, with no `null` in its JSON, and nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procwarden::model::check_wire(data);
});
