//! The seccomp filter every sandboxed step runs under: system calls a build or an indexer never
//! needs, and that could reach beyond the sandbox (mounts, namespaces, kernel modules, tracing
//! other processes, keyrings, the clock, reboots), fail with `EPERM`. A classic BPF program,
//! handed to bubblewrap (`--seccomp FD`) as raw instructions.

/// `struct sock_filter`.
#[derive(Clone, Copy)]
struct Instruction {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The denied system calls.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied() -> Vec<i64> {
    use libc::*;
    let mut calls = vec![
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_unshare,
        SYS_setns,
        SYS_acct,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_clock_adjtime,
        SYS_adjtimex,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_userfaultfd,
        SYS_quotactl,
        SYS_syslog,
        SYS_vhangup,
        SYS_fsopen,
        SYS_fsmount,
        SYS_fsconfig,
        SYS_move_mount,
        SYS_open_tree,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([SYS_iopl, SYS_ioperm]);
    calls
}

/// The filter as raw `sock_filter` instructions (native byte order), or `None` on an
/// architecture it is not written for.
pub fn filter() -> Option<Vec<u8>> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let calls = denied();
        let mut program = vec![
            Instruction {
                code: BPF_LD_W_ABS,
                jt: 0,
                jf: 0,
                k: ARCH_OFFSET,
            },
            // Another architecture's calls have other numbers: refuse them all.
            Instruction {
                code: BPF_JEQ_K,
                jt: 1,
                jf: 0,
                k: AUDIT_ARCH,
            },
            Instruction {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: SECCOMP_RET_KILL_PROCESS,
            },
            Instruction {
                code: BPF_LD_W_ABS,
                jt: 0,
                jf: 0,
                k: NR_OFFSET,
            },
        ];
        for (i, call) in calls.iter().enumerate() {
            // On a match, jump to the EPERM return after the remaining checks and the allow.
            let remaining = (calls.len() - i - 1) as u8;
            program.push(Instruction {
                code: BPF_JEQ_K,
                jt: remaining + 1,
                jf: 0,
                k: u32::try_from(*call).unwrap_or(u32::MAX),
            });
        }
        program.push(Instruction {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        });
        program.push(Instruction {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        });
        let mut bytes = Vec::with_capacity(program.len() * 8);
        for instruction in program {
            bytes.extend_from_slice(&instruction.code.to_ne_bytes());
            bytes.push(instruction.jt);
            bytes.push(instruction.jf);
            bytes.extend_from_slice(&instruction.k.to_ne_bytes());
        }
        Some(bytes)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_ends_in_allow_then_eperm_and_jumps_land_on_eperm() {
        let bytes = filter().expect("a filter on this architecture");
        assert_eq!(bytes.len() % 8, 0);
        let count = bytes.len() / 8;
        let at = |i: usize| &bytes[i * 8..i * 8 + 8];
        let k = |i: usize| u32::from_ne_bytes([at(i)[4], at(i)[5], at(i)[6], at(i)[7]]);
        assert_eq!(k(count - 2), SECCOMP_RET_ALLOW);
        assert_eq!(k(count - 1), SECCOMP_RET_ERRNO | libc::EPERM as u32);
        for i in 4..count - 2 {
            let jt = usize::from(at(i)[2]);
            assert_eq!(i + 1 + jt, count - 1, "instruction {i} jumps to EPERM");
        }
    }
}
