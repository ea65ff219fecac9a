#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(v) = netwhy_vmcore::VmcoreInfo::parse(data) {
        let _ = v.symbol("prb");
        let _ = v.number("phys_base");
        let _ = netwhy_vmcore::LogKind::detect(&v);
        let _ = netwhy_vmcore::kvm::Arch::from_vmcoreinfo(62, &v, None);
        let _ = netwhy_vmcore::kvm::Arch::from_vmcoreinfo(183, &v, None);
    }
});
