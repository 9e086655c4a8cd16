#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Both session kinds: 2-octet and 4-octet AS_PATHs decode differently.
    let _ = bgp::decode(
        data,
        &bgp::Context {
            four_octet_as: true,
            ebgp: true,
        },
    );
    let _ = bgp::decode(
        data,
        &bgp::Context {
            four_octet_as: false,
            ebgp: false,
        },
    );
    let _ = bgp::split_message(data);
});
