//! One inference straight through ONNX Runtime's C API, with no Rust heap allocation.
//!
//! `ort`'s safe `Session::run` builds name arrays, a `SessionOutputs` map and reference-counted
//! output values on every call. Here the name arrays are built once ([`Names`]), the output is
//! the preallocated tensor (ONNX Runtime writes into an `OrtValue` passed in non-null), and the
//! only per-call work on the Rust side is the `Run` call itself. ONNX Runtime's own C++
//! allocations (its CPU arena, reused across runs) are outside Rust's allocator.
#![allow(unsafe_code)]

use std::ffi::{c_char, CString};
use std::ptr;

use ort::session::Session;
use ort::value::Tensor;
use ort::AsPointer;

/// The input and output names as C strings, built once per model.
#[derive(Debug)]
pub(crate) struct Names {
    input: CString,
    output: CString,
}

impl Names {
    pub(crate) fn new(input: &str, output: &str) -> Result<Self, String> {
        let c = |name: &str| {
            CString::new(name).map_err(|_| format!("the name {name:?} contains a NUL byte"))
        };
        Ok(Self {
            input: c(input)?,
            output: c(output)?,
        })
    }

    /// The input name (valid UTF-8: it was built from a `&str`).
    pub(crate) fn input_name(&self) -> &str {
        self.input.to_str().unwrap_or_default()
    }

    /// The output name.
    pub(crate) fn output_name(&self) -> &str {
        self.output.to_str().unwrap_or_default()
    }
}

/// Runs the session on `input`, writing into `output` (both shaped at load).
pub(crate) fn run(
    session: &Session,
    input: &Tensor<f32>,
    output: &mut Tensor<f32>,
    names: &Names,
) -> Result<(), ort::Error> {
    let input_names: [*const c_char; 1] = [names.input.as_ptr()];
    let output_names: [*const c_char; 1] = [names.output.as_ptr()];
    let inputs: [*const ort::sys::OrtValue; 1] = [input.ptr()];
    let mut outputs: [*mut ort::sys::OrtValue; 1] = [output.ptr_mut()];
    // SAFETY: the session, both tensors and both names are alive for the call and owned by the
    // model (`&mut` on the model serialises runs: ONNX Runtime's `Run` is not re-entrant per
    // session here). The output `OrtValue` is non-null, so ONNX Runtime writes into it rather
    // than allocating; its shape and type were checked against the model at load. A non-null
    // status is turned into an `ort::Error` (which frees it).
    unsafe {
        let status = (ort::api().Run)(
            session.ptr().cast_mut(),
            ptr::null(),
            input_names.as_ptr(),
            inputs.as_ptr(),
            1,
            output_names.as_ptr(),
            1,
            outputs.as_mut_ptr(),
        );
        ort::Error::result_from_status(status)
    }
}
