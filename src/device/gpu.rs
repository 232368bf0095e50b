//! The wgpu side of a GPU device: adapter discovery, the device and queue, a pipeline cache, and
//! [`Plan`]s — pre-built lists of dispatches (pipeline + bind group + workgroup counts) that a training
//! step records into one compute pass. Everything here is built once per model and batch size; the hot
//! loop only writes inputs and records plans.

use super::pipeline_cache::{self, PersistentCache};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A WGSL kernel: source file, entry point and a unique name for the pipeline cache.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
}

/// What `wgtrain devices` and reports say about an adapter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterDescription {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// True for software rasterisers (llvmpipe/lavapipe, SwiftShader, WARP): correct but not a GPU.
    pub software: bool,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
}

impl AdapterDescription {
    pub fn from_adapter(index: usize, adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let lname = info.name.to_lowercase();
        let software = info.device_type == wgpu::DeviceType::Cpu
            || ["llvmpipe", "lavapipe", "swiftshader", "basic render"]
                .iter()
                .any(|s| lname.contains(s));
        AdapterDescription {
            index,
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            software,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        }
    }

    /// `name (backend, software)` for one-line messages.
    pub fn short(&self) -> String {
        format!(
            "{} ({}{})",
            self.name,
            self.backend,
            if self.software {
                ", software rasteriser"
            } else {
                ""
            }
        )
    }
}

/// A wgpu device and queue with the pipelines built on it.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterDescription,
    pub limits: wgpu::Limits,
    /// Which kernel variants run here ([`super::policy`]), decided once when the device opens.
    pub policy: super::policy::KernelPolicy,
    modules: Mutex<HashMap<usize, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
    /// The driver's pipeline cache, persisted between runs where the backend has one.
    pipeline_cache: Option<PersistentCache>,
    /// First uncaptured wgpu error (validation, out of memory) since the last check.
    error: Arc<Mutex<Option<String>>>,
    /// Set when the device is lost.
    lost: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter)
            .finish()
    }
}

impl GpuContext {
    /// Open a device on `adapter`, asking for the adapter's own limits (larger buffers than WebGPU's
    /// defaults where the hardware has them; sizes are checked against these limits before allocation).
    pub fn new(adapter: wgpu::Adapter, index: usize) -> Result<Self> {
        let description = AdapterDescription::from_adapter(index, &adapter);
        let policy = super::policy::KernelPolicy::decide(description.software)?;
        let limits = adapter.limits();
        let cached = pipeline_cache::wanted(&adapter);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: if cached {
                wgpu::Features::PIPELINE_CACHE
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::gpu("opening the device", e.to_string()))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let lost = Arc::new(Mutex::new(None::<String>));
        {
            let error = error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(e.to_string());
                }
            }));
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                *lost.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("device lost ({reason:?}): {msg}"));
            });
        }
        let pipeline_cache = if cached {
            pipeline_cache::open(&device, &adapter.get_info())
        } else {
            None
        };
        Ok(GpuContext {
            pipeline_cache,
            device,
            queue,
            adapter: description,
            limits,
            policy,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            error,
            lost,
        })
    }

    /// Turn any error wgpu reported since the last call into an `Error::Gpu` naming `op`.
    pub fn check(&self, op: &str) -> Result<()> {
        if let Some(msg) = self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(Error::gpu(op, msg));
        }
        if let Some(msg) = self.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(Error::gpu(op, msg));
        }
        Ok(())
    }

    /// The compute pipeline of a kernel, built on first use and cached. Layouts are derived from the
    /// shader (binding 0 the uniform, then the storage buffers in order).
    pub fn pipeline(&self, kernel: &Kernel) -> wgpu::ComputePipeline {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pipelines.get(kernel.name) {
            return p.clone();
        }
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        // One module per WGSL file (several kernels may share a file): key by the source's address.
        let module = modules
            .entry(kernel.source.as_ptr() as usize)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.name),
                        source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                    })
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module,
                entry_point: Some(kernel.entry),
                compilation_options: Default::default(),
                cache: self.pipeline_cache.as_ref().map(|c| &c.cache),
            });
        if let Some(c) = &self.pipeline_cache {
            c.touch();
        }
        pipelines.insert(kernel.name, pipeline.clone());
        pipeline
    }

    /// Allocate a storage buffer of `len` floats (or u32s), checking the device limits first.
    pub fn storage_buffer(
        &self,
        label: &str,
        len: usize,
        extra: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        // Rounded up to 16 bytes so any buffer can also be bound as an array of vec4<f32>.
        let bytes = (len.max(1).div_ceil(4) * 16) as u64;
        let max = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > max {
            // The user's choice of model, batch size or device: an input error (exit code 2).
            return Err(Error::Config(format!(
                "the GPU buffer for {label} needs {bytes} bytes but {} allows at most {max}; use a smaller --batch-size or model, or --device cpu",
                self.adapter.name
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | extra,
            mapped_at_creation: false,
        }))
    }

    /// Copy `bytes` bytes at the start of `buffer` back to the host (waits for the queue).
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, bytes: u64, op: &str) -> Result<Vec<u8>> {
        let staging = self.staging_buffer(bytes);
        self.read_buffer_via(buffer, bytes, &staging, op)
    }

    /// A host-readable buffer of `bytes` for [`read_buffer_via`](Self::read_buffer_via).
    pub fn staging_buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// [`read_buffer`](Self::read_buffer) through a caller-owned staging buffer (for read-backs that
    /// repeat during training, so they allocate nothing).
    pub fn read_buffer_via(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        staging: &wgpu::Buffer,
        op: &str,
    ) -> Result<Vec<u8>> {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(op) });
        enc.copy_buffer_to_buffer(buffer, 0, staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu(op, e.to_string()))?;
        self.check(op)?;
        rx.recv()
            .map_err(|e| Error::gpu(op, e.to_string()))?
            .map_err(|e| Error::gpu(op, e.to_string()))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::gpu(op, e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}

/// One dispatch being assembled: its uniform bytes and the storage buffers bound after it.
struct PendingDispatch {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
    /// Uniform bytes packed into the plan's buffer, or empty when `external` is bound instead.
    uniform: Vec<u8>,
    /// A uniform buffer the caller rewrites between submits (e.g. the optimiser's step-dependent constants).
    external: Option<wgpu::Buffer>,
    /// The resources bound after the uniform, by binding number.
    storage: Vec<(u32, Resource)>,
    workgroups: [u32; 3],
}

/// The part of a buffer a binding covers: `Some((offset, size))` in bytes, or `None` for all of it.
pub type ByteRange = Option<(u64, u64)>;

/// What a dispatch binds after its uniform.
#[derive(Clone)]
pub enum Resource {
    /// A buffer, whole (`None`) or a byte range of it.
    Buffer(wgpu::Buffer, ByteRange),
    /// A texture view (sampled or storage, as the shader declares it).
    Texture(wgpu::TextureView),
}

/// Storage buffers bound in order at bindings 1, 2, ...
fn numbered(storage: &[&wgpu::Buffer]) -> Vec<(u32, Resource)> {
    storage
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1, Resource::Buffer((*b).clone(), None)))
        .collect()
}

/// Collects dispatches, then builds all their uniforms into one buffer and their bind groups once.
pub struct PlanBuilder<'a> {
    ctx: &'a GpuContext,
    pending: Vec<PendingDispatch>,
}

/// A ready-to-record list of dispatches. Recording it costs no allocation on the device.
pub struct Plan {
    dispatches: Vec<(wgpu::ComputePipeline, wgpu::BindGroup, [u32; 3])>,
    _uniforms: Option<wgpu::Buffer>,
}

impl<'a> PlanBuilder<'a> {
    pub fn new(ctx: &'a GpuContext) -> Self {
        PlanBuilder {
            ctx,
            pending: Vec::new(),
        }
    }

    pub fn ctx(&self) -> &'a GpuContext {
        self.ctx
    }

    /// Add a dispatch of `kernel` with uniform `params` (binding 0) and `storage` (bindings 1..).
    pub fn push<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        storage: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        assert!(
            workgroups.iter().all(|&w| w <= max),
            "{}: {workgroups:?} workgroups exceed the limit {max}",
            kernel.name
        );
        self.pending.push(PendingDispatch {
            label: kernel.name,
            pipeline: self.ctx.pipeline(kernel),
            uniform: bytemuck::bytes_of(params).to_vec(),
            external: None,
            storage: numbered(storage),
            workgroups,
        });
    }

    /// Like [`push`](Self::push), with explicit binding numbers for the storage buffers (for entry points
    /// that use only some of the bindings their shader file declares).
    pub fn push_bindings<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        storage: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) {
        let ranged: Vec<_> = storage.iter().map(|&(i, b)| (i, b, None)).collect();
        self.push_ranges(kernel, params, &ranged, workgroups);
    }

    /// Like [`push_bindings`](Self::push_bindings), each buffer bound whole (`None`) or as the byte
    /// range `(offset, size)` (e.g. a window of a buffer bound as a uniform buffer).
    pub fn push_ranges<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        bindings: &[(u32, &wgpu::Buffer, ByteRange)],
        workgroups: [u32; 3],
    ) {
        let resources: Vec<_> = bindings
            .iter()
            .map(|&(i, b, range)| (i, Resource::Buffer(b.clone(), range)))
            .collect();
        self.push_resources(kernel, params, resources, workgroups);
    }

    /// Like [`push`](Self::push), with any resources (buffers, buffer ranges, texture views) at the
    /// given binding numbers.
    pub fn push_resources<P: bytemuck::Pod>(
        &mut self,
        kernel: &Kernel,
        params: &P,
        resources: Vec<(u32, Resource)>,
        workgroups: [u32; 3],
    ) {
        self.push(kernel, params, &[], workgroups);
        self.pending.last_mut().expect("just pushed").storage = resources;
    }

    /// Like [`push`](Self::push), but binding 0 is `uniform`, a buffer the caller keeps up to date.
    pub fn push_with_uniform_buffer(
        &mut self,
        kernel: &Kernel,
        uniform: &wgpu::Buffer,
        storage: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        self.pending.push(PendingDispatch {
            label: kernel.name,
            pipeline: self.ctx.pipeline(kernel),
            uniform: Vec::new(),
            external: Some(uniform.clone()),
            storage: numbered(storage),
            workgroups,
        });
    }

    pub fn finish(self) -> Result<Plan> {
        let ctx = self.ctx;
        let align = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let stride = |u: &[u8]| u.len().div_ceil(align) * align;
        // (external uniforms have empty inline bytes and take no room)
        let total: usize = self.pending.iter().map(|d| stride(&d.uniform)).sum();
        let uniforms = (total > 0).then(|| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("plan uniforms"),
                size: total as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut bytes = vec![0u8; total];
        let mut offset = 0usize;
        let mut dispatches = Vec::with_capacity(self.pending.len());
        for d in &self.pending {
            let uniform_binding = match &d.external {
                Some(buffer) => buffer.as_entire_binding(),
                None => {
                    bytes[offset..offset + d.uniform.len()].copy_from_slice(&d.uniform);
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: uniforms.as_ref().expect("uniform buffer"),
                        offset: offset as u64,
                        size: std::num::NonZeroU64::new(d.uniform.len() as u64),
                    })
                }
            };
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform_binding,
            }];
            for (binding, r) in &d.storage {
                let resource = match r {
                    Resource::Buffer(b, None) => b.as_entire_binding(),
                    Resource::Buffer(b, Some((offset, size))) => {
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: b,
                            offset: *offset,
                            size: std::num::NonZeroU64::new(*size),
                        })
                    }
                    Resource::Texture(view) => wgpu::BindingResource::TextureView(view),
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: *binding,
                    resource,
                });
            }
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.label),
                layout: &d.pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            dispatches.push((d.pipeline.clone(), bind_group, d.workgroups));
            offset += stride(&d.uniform);
        }
        if let Some(u) = &uniforms {
            ctx.queue.write_buffer(u, 0, &bytes);
        }
        ctx.check("building the GPU execution plan")?;
        Ok(Plan {
            dispatches,
            _uniforms: uniforms,
        })
    }
}

impl Plan {
    /// Record every dispatch into `pass`, in order.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for (pipeline, bind_group, [x, y, z]) in &self.dispatches {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(*x, *y, *z);
        }
    }

    /// Dispatches per recording.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }
}

/// Split `n` one-dimensional workgroups into a 2-D grid that respects the per-dimension limit; kernels
/// rebuild the linear index as `wid.y * num_workgroups.x + wid.x`.
pub fn grid_1d(n: u32, max_per_dim: u32) -> [u32; 3] {
    let n = n.max(1);
    if n <= max_per_dim {
        [n, 1, 1]
    } else {
        [max_per_dim, n.div_ceil(max_per_dim), 1]
    }
}
