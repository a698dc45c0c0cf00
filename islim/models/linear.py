"""Linear embedding models with ImplicitSLIM: MF trained by closed-form ALS, and PLRec (spec §3.4, §3.5).

Both models keep item embeddings as ``(n_items, d)`` arrays (one row per item; the paper's ``Q`` and
``W`` are their transposes) and score held-out users from their fold-in rows only:

* :class:`MatrixFactorization` — ``R̂ = P Qᵀ + 1bᵀ``; users by the ridge step
  ``P = (R − 1bᵀ) Q (r_p I + QᵀQ)⁻¹`` (also the fold-in), items by the ridge step, optionally pulled
  towards ``V = ImplicitSLIM(Q)`` with strength ``s_q``; or started from user factors given by
  ImplicitSLIM on ``Xᵀ`` (``init="implicit_slim_users"``, the user-side embeddings of issue 15).
* :class:`PLRec` — ``P = R Diag(ω) W`` with fixed encoder embeddings ``W`` and training-popularity
  weights ``ω``; ``Q`` by the (optionally regularised) item step.

The fit loop reproduces the official notebook driver: ``n_init_steps`` initialisation steps
(epochs ``-n_init_steps … -1``; evaluated only when there are no training epochs), then ``n_epochs``
training epochs, each followed by the caller's validation; training stops at the first evaluation
that does not beat the best one by more than ``tol`` (or after ``patience + 1`` such evaluations),
and the best embeddings are restored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from islim.embeddings import implicit_slim, random_embeddings, slim_lle, svd_embeddings
from islim.embeddings.implicit import implicit_slim_users
from islim.errors import ConfigError, DataFormatError, IslimError
from islim.linalg import column_space_basis
from islim.memory import dense_bytes, ensure_fits
from islim.models.base import DEFAULT_MONITOR, EpochHistory, Recommender, Validator, largest
from islim.models.ridge import (
    DEFAULT_BATCH_SIZE,
    UserEncoder,
    encode_users,
    item_means,
    item_ridge,
    item_statistics,
    plrec_encoder,
    plrec_item_weights,
    solve_item_step,
    user_ridge_encoder,
)
from islim.numerics import require_finite

#: Item-embedding initialisations: Gaussian, right singular vectors of R, explicit SLIM-LLE,
#: ImplicitSLIM applied to the Gaussian embeddings.
INITS = ("random", "svd", "slim_lle", "implicit_slim")
#: MF's further initialisation: user factors from ImplicitSLIM on ``Xᵀ``, items by the ridge step.
USER_SIDE_INIT = "implicit_slim_users"
#: Item-step regularisers: plain ridge, or a pull towards ImplicitSLIM embeddings.
REGULARIZERS = ("none", "implicit_slim")


def _training_matrix(X, dtype: np.dtype) -> sp.csr_matrix:
    """``X`` as a CSR matrix of ``dtype`` (no copy when it already is one)."""
    if not sp.issparse(X):
        raise DataFormatError(
            f"expected a scipy.sparse (n_users, n_items) feedback matrix, got {type(X).__name__}; convert it with scipy.sparse.csr_matrix"
        )
    return X.tocsr().astype(dtype, copy=False)


class _LinearEmbeddingModel(Recommender):
    """Fit loop, ImplicitSLIM call, initialisation and scoring shared by MF and PLRec."""

    #: The ``init`` values the model accepts.
    inits: tuple[str, ...] = INITS

    @classmethod
    def memory_bytes(cls, n_users, n_items, params, grid) -> int:
        """``6 I f`` float64 values of item embeddings and statistics and ``3 U f`` of user factors
        (``f = n_factors``); ``init = "slim_lle"`` adds SLIM-LLE's three dense float64 ``I x I``
        arrays (ImplicitSLIM's init and regulariser stay sparse)."""
        f = largest(params, grid, "n_factors")
        nbytes = 8 * (6 * n_items * f + 3 * n_users * f)
        inits = [params.get("init"), *grid.get("init", [])]
        if "slim_lle" in inits:
            nbytes += 3 * 8 * n_items**2
        if USER_SIDE_INIT in inits:  # ImplicitSLIM on Xᵀ: its input, output and work arrays
            nbytes += 8 * 7 * n_users * f
        return nbytes

    # ----------------------------------------------------------------- fitting
    def fit(
        self,
        X: sp.spmatrix,
        validate: Validator | None = None,
        *,
        monitor: str = DEFAULT_MONITOR,
        checkpoint: str | None = None,
        progress: bool = False,
    ) -> _LinearEmbeddingModel:
        """Train on the training users' feedback ``X`` (see :meth:`Recommender.fit`).

        ``validate`` is called after every training epoch (after every initialisation step when
        ``n_epochs == 0``); without it all epochs run. Every step's factors are checked for NaN
        and infinite entries. ``checkpoint`` and ``progress`` are ignored: a fit takes seconds to
        minutes and runs no mini-batch loop.

        Returns
        -------
        self
            With ``history_``, ``best_epoch_`` and ``best_score_`` (without ``validate``:
            ``history_`` is empty, ``best_epoch_`` the last epoch and ``best_score_`` ``None``).

        Raises
        ------
        NumericalError
            A step produced non-finite factors; the message names the epoch.
        """
        history = EpochHistory(validate, monitor)
        self.dtype_ = np.dtype(self.dtype)
        X = _training_matrix(X, self.dtype_)
        self._check_params(X)
        self._start(X)
        self.best_epoch_: int | None = None
        self.best_score_: float | None = None
        best_state = None
        since_best = 0
        for epoch in range(-self.n_init_steps, self.n_epochs):
            if epoch < 0:
                self._init_step(X)
            else:
                self._train_step(X, epoch)
            self._check_finite(epoch)
            if validate is None:
                self.best_epoch_ = epoch  # without validation the model keeps the last epoch
                continue
            if epoch < 0 and self.n_epochs > 0:
                continue
            score = history.record(self, epoch)
            if self.best_score_ is None or score > self.best_score_ + self.tol:
                self.best_score_, self.best_epoch_, best_state = score, epoch, self._state()
                since_best = 0
            else:
                since_best += 1
                if since_best > self.patience:
                    break
        self.history_ = history.rows
        if best_state is not None:
            self._restore(best_state)
        return self

    def _check_finite(self, epoch: int) -> None:
        """Raise :class:`NumericalError` if the factors of ``epoch`` hold NaN or infinite entries."""
        for factors in ("item_factors_", "encoder_factors_"):
            if getattr(self, factors, None) is not None:
                require_finite(getattr(self, factors), f"{factors.rstrip('_').replace('_', ' ')} after ALS epoch {epoch}")

    def _check_params(self, X: sp.csr_matrix) -> None:
        n_items = X.shape[1]
        if not 1 <= self.n_factors <= n_items:
            raise ConfigError(f"n_factors must be between 1 and the number of items ({n_items}), got {self.n_factors}")
        if self.init not in self.inits:
            raise ConfigError(f"init must be one of {self.inits}, got {self.init!r}")
        if self.regularizer not in REGULARIZERS:
            raise ConfigError(f"regularizer must be one of {REGULARIZERS}, got {self.regularizer!r}")
        if self.n_init_steps < 0 or self.n_epochs < 0:
            raise ConfigError(f"n_init_steps and n_epochs must be >= 0, got {self.n_init_steps} and {self.n_epochs}")
        if self.n_init_steps > 1 and self.init != "implicit_slim":
            raise ConfigError(
                f"only init='implicit_slim' can be applied repeatedly, got init={self.init!r} with "
                f"n_init_steps={self.n_init_steps}; use n_init_steps=1"
            )
        if self.init != "random" and self.n_init_steps == 0 and not self._init_every_epoch():
            raise ConfigError(f"init={self.init!r} needs n_init_steps >= 1 (0 leaves the random embeddings)")
        if min(self.r_q, self.s_q, self.tol, self.patience) < 0:
            raise ConfigError(f"r_q, s_q, tol and patience must be >= 0, got {self.r_q}, {self.s_q}, {self.tol}, {self.patience}")
        if {"implicit_slim", USER_SIDE_INIT} & {self.init, self.regularizer} and not (self.item_lambda > 0 and self.item_alpha > 0):
            raise ConfigError(f"ImplicitSLIM needs item_lambda > 0 and item_alpha > 0, got {self.item_lambda}, {self.item_alpha}")

    def _init_every_epoch(self) -> bool:
        return False

    def _start(self, X: sp.csr_matrix) -> None:
        """Fixed quantities from the training data (item count, bias); memory check for the embeddings."""
        n_items = X.shape[1]
        ensure_fits(dense_bytes((n_items, self.n_factors), 8, 6), f"item embeddings ({n_items} x {self.n_factors}, x6)")
        self.n_items_ = n_items
        self.item_bias_ = item_means(X) if self.bias else None

    def _gaussian_embeddings(self) -> np.ndarray:
        """The seeded ``N(0, 1)`` ``(n_items, d)`` embeddings every initialisation starts from.

        Unit variance as the official ``np.random.randn``: ImplicitSLIM's output depends on the
        input scale (scaling ``E₀`` by ``s`` acts like ``α → α s²``), so the reference α values
        assume it.
        """
        return random_embeddings(self.n_items_, self.n_factors, self.seed, scale=1.0, dtype=self.dtype_)

    def _implicit_slim(self, E: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """ImplicitSLIM(E) with this model's λ, α, τ, then optional orthonormalisation (every call, as the official code)."""
        out = np.asarray(implicit_slim(E, X, self.item_lambda, self.item_alpha, self.item_threshold))
        if self.orth:
            out = column_space_basis(out)
        return out.astype(self.dtype_, copy=False)

    def _initialised(self, E: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """One initialisation step applied to the embeddings ``E`` (``(n_items, d)``)."""
        if self.init == "implicit_slim":
            return self._implicit_slim(E, X)
        if self.init == "svd":
            return svd_embeddings(X, self.n_factors, self.seed, dtype=self.dtype_)
        if self.init == "slim_lle":
            return np.asarray(slim_lle(X, self.item_lambda, self.n_factors), dtype=self.dtype_)
        return E

    def _item_step(self, X: sp.csr_matrix, encoder: UserEncoder, target: np.ndarray | None) -> np.ndarray:
        """Item embeddings from the user factors given by ``encoder``, pulled towards ``target`` if given."""
        stats = item_statistics(X, encoder, self.n_factors, self.batch_size)
        s_q = self.s_q if target is not None else 0.0
        return solve_item_step(stats, self.r_q, self.item_bias_, s_q, target, dtype=self.dtype_)

    # ---------------------------------------------------------------- scoring
    def _check_fitted(self, X) -> sp.csr_matrix:
        if getattr(self, "item_factors_", None) is None:
            raise IslimError(f"{type(self).__name__} is not fitted yet; call fit(X_train) before scoring")
        X = _training_matrix(X, self.dtype_)
        if X.shape[1] != self.n_items_:
            raise DataFormatError(f"expected fold-in rows over {self.n_items_} items, got {X.shape[1]} columns")
        return X

    def transform(self, X) -> np.ndarray:
        """User factors ``(n_users, d)`` of the rows of ``X`` (fold-in for held-out users), each from its own row."""
        X = self._check_fitted(X)
        return encode_users(X, self._user_encoder(), self.n_factors, self.dtype_, self.batch_size)

    def score_batch(self, rows: sp.spmatrix, users: np.ndarray | None = None) -> np.ndarray:
        """Scores ``P Qᵀ + 1bᵀ`` of every item for a batch of fold-in rows.

        Parameters
        ----------
        rows : scipy.sparse matrix, shape (b, n_items)
            Fold-in rows of held-out (or training) users.
        users : ignored
            Users are scored from their rows alone (``user_scoring = "fold_in"``).

        Returns
        -------
        ndarray, shape (b, n_items), float32
            Row ``u`` depends only on row ``u`` of ``rows`` and the fitted model. Already-seen
            items are *not* masked (the evaluator does that). Cost O(nnz · d + b I d); memory one
            ``(b, n_items)`` float32 array (checked).
        """
        X = self._check_fitted(rows)
        ensure_fits(dense_bytes((X.shape[0], self.n_items_), 4, 2), f"score batch ({X.shape[0]} x {self.n_items_} float32)")
        P = self._user_encoder()(X).astype(np.float32, copy=False)
        scores = P @ self.item_factors_.astype(np.float32, copy=False).T
        if self.item_bias_ is not None:
            scores += self.item_bias_.astype(np.float32)
        return scores


class MatrixFactorization(_LinearEmbeddingModel):
    """Matrix factorisation trained by alternating closed-form ridge steps (ALS), with ImplicitSLIM.

    Defaults are the official "MF + ImplicitSLIM init + reg" setup (spec §3.5, tuned on ML-20M);
    see :data:`REFERENCE_HYPERPARAMETERS` for the other setups.

    Parameters
    ----------
    n_factors : int
        Embedding size ``d``.
    r_p : float
        User ridge strength (``> 0``); also used for the fold-in of held-out users.
    r_q : float
        Item ridge strength (``≥ 0``).
    bias : bool
        Use the fixed item bias ``b`` = item means of the training matrix.
    init : str
        Item-embedding initialisation, one of :data:`INITS`, or ``"implicit_slim_users"``: user
        factors ``P = ImplicitSLIM_users(P₀)`` of seeded ``N(0, 1)`` ``(n_users, d)`` embeddings
        ``P₀`` (:func:`~islim.embeddings.implicit.implicit_slim_users`, the item-side routine on
        ``Xᵀ``, with ``item_lambda``, ``item_alpha`` and ``item_threshold`` as its λ, α and
        user-degree threshold τ), then ``Q`` by the item ridge step from ``P``.
    regularizer : str
        ``"none"`` or ``"implicit_slim"`` (item step pulled towards ``V = ImplicitSLIM(Q)``,
        recomputed before every item step; at epoch 0 ``V = Q`` when ``init="implicit_slim"``).
    s_q : float
        Strength of that pull (``≥ 0``).
    item_lambda, item_alpha, item_threshold : float
        ImplicitSLIM's λ, α and popularity threshold τ (``item_lambda`` is also SLIM-LLE's λ).
    orth : bool
        Orthonormalise the columns of every ImplicitSLIM output (init and target).
    n_init_steps : int
        Initialisation steps before training; ``> 1`` repeats ImplicitSLIM ("multistep init");
        0 keeps the Gaussian embeddings (``init="random"`` only).
    n_epochs : int
        ALS epochs; 0 = initialisation only, users folded in by the ridge step.
    tol, patience : float, int
        Early stopping (needs ``validate`` in :meth:`fit`).
    batch_size : int
        Users per batch.
    seed : int
        Seed of the Gaussian embeddings and the SVD.
    dtype : str
        Dtype of the embeddings and of the products with ``R``.

    Attributes
    ----------
    item_factors_ : ndarray, shape (n_items, d)
        ``Q``.
    item_bias_ : ndarray of float64, shape (n_items,), or None
    history_, best_epoch_, best_score_
        See :meth:`fit`.
    """

    def __init__(
        self,
        n_factors: int = 256,
        r_p: float = 1606.1732584049885,
        r_q: float = 0.0002834483496119082,
        bias: bool = True,
        init: str = "implicit_slim",
        regularizer: str = "implicit_slim",
        s_q: float = 26.91023013144844,
        item_lambda: float = 944.9124867577675,
        item_alpha: float = 0.8134979262528148,
        item_threshold: float = 264.76225833649335,
        orth: bool = False,
        n_init_steps: int = 1,
        n_epochs: int = 10,
        tol: float = 1e-4,
        patience: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int = 1337,
        dtype: str = "float32",
    ):
        self._store_params(locals())

    def _check_params(self, X: sp.csr_matrix) -> None:
        super()._check_params(X)
        if not self.r_p > 0:
            raise ConfigError(f"r_p must be positive (it makes the user step well posed), got {self.r_p}")

    inits = (*INITS, USER_SIDE_INIT)

    def _start(self, X: sp.csr_matrix) -> None:
        super()._start(X)
        self.item_factors_ = self._gaussian_embeddings()

    def _init_step(self, X: sp.csr_matrix) -> None:
        if self.init == USER_SIDE_INIT:
            self.item_factors_ = item_ridge(X, self._user_side_factors(X), self.r_q, self.item_bias_)
        else:
            self.item_factors_ = self._initialised(self.item_factors_, X)

    def _user_side_factors(self, X: sp.csr_matrix) -> np.ndarray:
        """``(n_users, d)`` user factors: ImplicitSLIM on ``Xᵀ`` of seeded ``N(0, 1)`` user
        embeddings (unit variance, as the item side's), orthonormalised with ``orth``."""
        start = random_embeddings(X.shape[0], self.n_factors, self.seed, scale=1.0, dtype=self.dtype_)
        out = np.asarray(implicit_slim_users(start, X, self.item_lambda, self.item_alpha, self.item_threshold))
        if self.orth:
            out = column_space_basis(out)
        return out.astype(self.dtype_, copy=False)

    def _train_step(self, X: sp.csr_matrix, epoch: int) -> None:
        target = None
        if self.regularizer == "implicit_slim":
            fresh = self.init == "implicit_slim" and epoch == 0
            target = self.item_factors_ if fresh else self._implicit_slim(self.item_factors_, X)
        self.item_factors_ = self._item_step(X, self._user_encoder(), target)

    def _user_encoder(self) -> UserEncoder:
        return user_ridge_encoder(self.item_factors_, self.r_p, self.item_bias_)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors_": self.item_factors_.copy()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.item_factors_ = state["item_factors_"]


class PLRec(_LinearEmbeddingModel):
    """PLRec: users projected by fixed encoder embeddings, item embeddings by a ridge step.

    ``P = R Diag(ω) W`` with ``ω_i = 1 / (c_i^{1/p} + 1e-4)`` from the *training* popularity ``c``
    (stored at fit time, so a user's projection never depends on the rest of its batch), ``W``
    from ``init``; ``Q`` from the MF item step, optionally pulled towards ``V`` (``V = W`` when
    ``init="implicit_slim"``, else ``V ← ImplicitSLIM(V)`` each epoch starting from ``V = W``).

    Defaults are the official "PLRec (SVD)" baseline (spec §3.5); see
    :data:`REFERENCE_HYPERPARAMETERS`. Arguments as in :class:`MatrixFactorization`, plus:

    Parameters
    ----------
    power : float
        ``p`` of the popularity weighting (large = none).
    init_after_step : bool
        Re-apply ImplicitSLIM to ``W`` at the start of every epoch ("multistep"; needs
        ``init="implicit_slim"``).
    n_epochs : int
        Item steps (``≥ 1``); without re-initialisation or a changing target they repeat the same
        solution.

    Attributes
    ----------
    encoder_factors_ : ndarray, shape (n_items, d)
        ``W``.
    item_factors_ : ndarray, shape (n_items, d)
        ``Q``.
    item_weights_ : ndarray of float64, shape (n_items,)
        ``ω``.
    item_bias_, history_, best_epoch_, best_score_
        As in :class:`MatrixFactorization`.
    """

    def __init__(
        self,
        n_factors: int = 256,
        power: float = 1.2778018325012814,
        r_q: float = 0.008348500653807706,
        bias: bool = False,
        init: str = "svd",
        regularizer: str = "none",
        s_q: float = 0.0,
        item_lambda: float = 500.0,
        item_alpha: float = 1.0,
        item_threshold: float = 0.0,
        orth: bool = False,
        init_after_step: bool = False,
        n_init_steps: int = 1,
        n_epochs: int = 1,
        tol: float = 1e-4,
        patience: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int = 1337,
        dtype: str = "float32",
    ):
        self._store_params(locals())

    def _init_every_epoch(self) -> bool:
        return self.init_after_step

    def _check_params(self, X: sp.csr_matrix) -> None:
        super()._check_params(X)
        if self.n_epochs < 1:
            raise ConfigError(f"PLRec needs n_epochs >= 1 (the item step defines Q), got {self.n_epochs}")
        if self.init_after_step and self.init != "implicit_slim":
            raise ConfigError(f"init_after_step=True re-applies ImplicitSLIM and needs init='implicit_slim', got {self.init!r}")

    def _start(self, X: sp.csr_matrix) -> None:
        super()._start(X)
        self.item_weights_ = plrec_item_weights(X, self.power)
        self.encoder_factors_ = self._gaussian_embeddings()
        self.item_factors_ = None
        self._target = None

    def _init_step(self, X: sp.csr_matrix) -> None:
        self.encoder_factors_ = self._initialised(self.encoder_factors_, X)

    def _train_step(self, X: sp.csr_matrix, epoch: int) -> None:
        if self.init_after_step:
            self._init_step(X)
        target = None
        if self.regularizer == "implicit_slim":
            if self.init == "implicit_slim":
                target = self.encoder_factors_
            else:
                previous = self.encoder_factors_ if self._target is None else self._target
                self._target = target = self._implicit_slim(previous, X)
        self.item_factors_ = self._item_step(X, self._user_encoder(), target)

    def _user_encoder(self) -> UserEncoder:
        return plrec_encoder(self.encoder_factors_, self.item_weights_)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors_": self.item_factors_.copy(), "encoder_factors_": self.encoder_factors_.copy()}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.item_factors_ = state["item_factors_"]
        self.encoder_factors_ = state["encoder_factors_"]


#: Model classes by the ``"model"`` key of :data:`REFERENCE_HYPERPARAMETERS`.
MODELS = {"mf": MatrixFactorization, "plrec": PLRec}

#: The official notebook's stored best configurations (spec §3.5; Bayesian-optimisation probe
#: points, presumably tuned on ML-20M, seed 1337), as constructor arguments. Names map as
#: L→n_factors, item_λ/item_α/item_thr→item_lambda/item_alpha/item_threshold, reg→regularizer,
#: max_init_epochs→n_init_steps, max_train_epochs→n_epochs; 'none' init → "random",
#: 'LLE-SLIM' → "slim_lle". On other datasets λ, τ and the ridge strengths need re-tuning
#: (they scale with the number of users).
REFERENCE_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "mf_implicit_slim": {
        "model": "mf",
        "n_factors": 256,
        "bias": True,
        "init": "implicit_slim",
        "regularizer": "implicit_slim",
        "item_lambda": 944.9124867577675,
        "item_alpha": 0.8134979262528148,
        "item_threshold": 264.76225833649335,
        "r_p": 1606.1732584049885,
        "r_q": 0.0002834483496119082,
        "s_q": 26.91023013144844,
        "orth": False,
        "n_init_steps": 1,
        "n_epochs": 10,
    },
    "mf_implicit_slim_multistep_init": {
        "model": "mf",
        "n_factors": 256,
        "bias": True,
        "init": "implicit_slim",
        "regularizer": "none",
        "item_lambda": 597.4182355801788,
        "item_alpha": 0.5176648566904536,
        "item_threshold": 394.82499101128354,
        "r_p": 1414.4673175122664,
        "orth": False,
        "n_init_steps": 10,
        "n_epochs": 0,
    },
    "mf_slim_lle_init": {
        "model": "mf",
        "n_factors": 256,
        "bias": True,
        "init": "slim_lle",
        "regularizer": "none",
        "item_lambda": 4470.118449330024,
        "r_p": 0.15477826213462,
        "n_init_steps": 1,
        "n_epochs": 0,
    },
    "mf": {
        "model": "mf",
        "n_factors": 256,
        "bias": True,
        "init": "random",
        "regularizer": "none",
        "r_p": 19.804162868530003,
        "r_q": 185.54338507706711,
        "n_init_steps": 0,
        "n_epochs": 20,
    },
    "plrec_svd": {
        "model": "plrec",
        "n_factors": 256,
        "bias": False,
        "init": "svd",
        "regularizer": "none",
        "power": 1.2778018325012814,
        "r_q": 0.008348500653807706,
        "n_init_steps": 1,
        "n_epochs": 1,
    },
    "plrec_slim_lle": {
        "model": "plrec",
        "n_factors": 128,
        "bias": False,
        "init": "slim_lle",
        "regularizer": "none",
        "item_lambda": 1218.249396070337,
        "power": 2.8606363101792773,
        "r_q": 19.64194050012942,
        "n_init_steps": 1,
        "n_epochs": 1,
    },
    "plrec_implicit_slim_multistep": {
        "model": "plrec",
        "n_factors": 256,
        "bias": False,
        "init": "implicit_slim",
        "regularizer": "implicit_slim",
        "item_lambda": 907.3171013771947,
        "item_alpha": 10.000000000000002,
        "item_threshold": 82.39948654917328,
        "power": 10000.00000000001,
        "r_q": 7.826179962320708,
        "s_q": 164074.31862023394,
        "orth": True,
        "init_after_step": True,
        "n_init_steps": 0,
        "n_epochs": 10,
    },
}


def reference_model(name: str, **overrides: Any) -> _LinearEmbeddingModel:
    """A model built from :data:`REFERENCE_HYPERPARAMETERS` ``[name]``, with ``overrides`` applied."""
    if name not in REFERENCE_HYPERPARAMETERS:
        raise ConfigError(f"unknown reference setup {name!r}; choose one of {sorted(REFERENCE_HYPERPARAMETERS)}")
    params = {**REFERENCE_HYPERPARAMETERS[name], **overrides}
    return MODELS[params.pop("model")](**params)
