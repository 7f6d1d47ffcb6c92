//! The network between the input vector and the towers, shared by every
//! model so that no model copies another: plain embeddings (ESMM's paper
//! form), a shared bottom, MMOE's experts and gates, or PLE/CGC levels. Each
//! head (a tower) gets its own representation; mixture-of-experts backbones
//! also return their gate weights.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::experts::GateWeights;
use super::mmoe::MmoeNet;
use super::ple::PleNet;
use super::shared_bottom::SharedBottomNet;
use super::{Head, ModelError, ModelsConfig};

/// Which backbone a funnel model's towers sit on (`[models.esmm] backbone`,
/// `[models.ctnocvr] backbone`). Each reads its settings from its own
/// section (`[models.shared-bottom]`, `[models.mmoe]`, `[models.ple]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// The towers sit directly on the shared embeddings (ESMM's paper form).
    Embeddings,
    SharedBottom,
    Mmoe,
    /// `[models.ple]` with its `levels`.
    Ple,
    /// `[models.ple]` experts in a single CGC layer (`levels` = 1), as
    /// CTnoCVR was published on.
    Cgc,
}

/// What a backbone yields for a batch.
#[derive(Debug)]
pub struct BackboneOutput {
    /// One [B, out_dim] representation per head.
    pub heads: Vec<Tensor>,
    pub gates: Vec<GateWeights>,
    /// The shared representation the heads are computed from: the input
    /// (plain embeddings), the bottom's output, MMOE's stacked expert outputs,
    /// PLE's last level's shared experts' outputs.
    pub representation: Tensor,
}

#[derive(Debug)]
enum Net {
    Embeddings,
    SharedBottom(SharedBottomNet),
    Mmoe(MmoeNet),
    Ple(PleNet),
}

/// A built backbone.
#[derive(Debug)]
pub struct Backbone {
    net: Net,
    in_dim: i64,
    n_heads: usize,
}

impl Backbone {
    /// Builds `kind` under the model's VarStore `root` for `heads`.
    pub fn new(root: &nn::Path, kind: BackboneKind, in_dim: i64, heads: &[Head], cfg: &ModelsConfig) -> Result<Self, ModelError> {
        let net = match kind {
            BackboneKind::Embeddings => Net::Embeddings,
            BackboneKind::SharedBottom => {
                Net::SharedBottom(SharedBottomNet::new(&(root / "shared"), in_dim, &cfg.shared_bottom)?)
            }
            BackboneKind::Mmoe => Net::Mmoe(MmoeNet::new(root, in_dim, heads, &cfg.mmoe)?),
            BackboneKind::Ple => Net::Ple(PleNet::new(root, in_dim, heads, &cfg.ple, None)?),
            BackboneKind::Cgc => Net::Ple(PleNet::new(root, in_dim, heads, &cfg.ple, Some(1))?),
        };
        Ok(Backbone { net, in_dim, n_heads: heads.len() })
    }

    /// MMOE's experts and gates, when this is an MMOE backbone.
    pub(crate) fn mmoe(&self) -> Option<&MmoeNet> {
        match &self.net {
            Net::Mmoe(n) => Some(n),
            _ => None,
        }
    }

    /// Width of each head's representation.
    pub fn out_dim(&self) -> i64 {
        match &self.net {
            Net::Embeddings => self.in_dim,
            Net::SharedBottom(n) => n.out_dim(),
            Net::Mmoe(n) => n.out_dim(),
            Net::Ple(n) => n.out_dim(),
        }
    }

    /// Variable-name prefixes of the last layer every head reaches
    /// (with no network above the embeddings, the embedding tables).
    pub fn last_shared(&self) -> Vec<String> {
        match &self.net {
            Net::Embeddings => vec!["shared.input.".into()],
            Net::SharedBottom(n) => n.last_shared(),
            Net::Mmoe(n) => n.last_shared(),
            Net::Ple(n) => n.last_shared(),
        }
    }

    /// [B, in] -> one representation per head.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> BackboneOutput {
        let same = |h: Tensor| BackboneOutput {
            heads: (0..self.n_heads).map(|_| h.shallow_clone()).collect(),
            gates: vec![],
            representation: h,
        };
        match &self.net {
            Net::Embeddings => same(x.shallow_clone()),
            Net::SharedBottom(n) => same(n.forward_t(x, train)),
            Net::Mmoe(n) => {
                let (heads, gates, representation) = n.forward(x);
                BackboneOutput { heads, gates, representation }
            }
            Net::Ple(n) => {
                let (heads, gates, representation) = n.forward(x);
                BackboneOutput { heads, gates, representation }
            }
        }
    }
}
