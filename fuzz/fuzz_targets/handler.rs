//! Arbitrary requests through the HTTP request handler (a pure function): every answer must be
//! a well-formed JSON response with a status the contract names, never a panic or a 5xx.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procwarden::model::check_handler_request(data);
});
