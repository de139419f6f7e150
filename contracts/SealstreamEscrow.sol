// SPDX-License-Identifier: Apache-2.0
// Escrow of one order's payment with a dispute window (docs/market-design.md, "Escrow").
pragma solidity 0.8.26;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/// Holds each order's payment until its dispute window has passed.
///
/// States: None -> Held (deposit) -> Released (after the window, by anyone)
///                              \-> Disputed (the buyer, within the window)
///                                   -> Resolved (the arbiter splits the amount)
///                                   -> Released (nobody decided by the arbitration
///                                      deadline: the dispute lapses, the seller is paid)
/// `releaseAfter` is the end of the dispute window while Held, and the
/// arbitration deadline (dispute time + arbitrationPeriod) while Disputed.
contract SealstreamEscrow is ReentrancyGuard {
    using SafeERC20 for IERC20;

    enum State {
        None,
        Held,
        Disputed,
        Released,
        Resolved
    }

    struct Deal {
        address buyer;
        address seller;
        address token; // address(0): the chain's native coin
        uint256 amount;
        uint64 releaseAfter;
        State state;
    }

    /// Decides disputes (the market's key).
    address public immutable arbiter;
    /// Seconds from a deposit during which the buyer may dispute.
    uint64 public immutable disputeWindow;
    /// Seconds from a dispute the arbiter has to resolve it.
    uint64 public immutable arbitrationPeriod;
    /// Deals by order key (keccak256 of the order id string).
    mapping(bytes32 => Deal) public deals;

    event Deposited(
        bytes32 indexed orderKey,
        address indexed buyer,
        address indexed seller,
        address token,
        uint256 amount,
        uint64 releaseAfter
    );
    event Released(bytes32 indexed orderKey, address indexed seller, uint256 amount);
    event Disputed(bytes32 indexed orderKey, bytes32 evidenceHash, uint64 decideBy);
    event Resolved(bytes32 indexed orderKey, uint256 toBuyer, uint256 toSeller, bytes32 decisionHash);

    error AlreadyExists();
    error BadDeposit();
    error WrongState(State state);
    error WindowOpen();
    error WindowClosed();
    error NotBuyer();
    error NotArbiter();
    error SplitTooLarge();

    constructor(address arbiter_, uint64 disputeWindow_, uint64 arbitrationPeriod_) {
        if (arbiter_ == address(0)) revert NotArbiter();
        arbiter = arbiter_;
        disputeWindow = disputeWindow_;
        arbitrationPeriod = arbitrationPeriod_;
    }

    /// The buyer pays `amount` of `token` (approve it first), or sends
    /// exactly `amount` wei with `token` = 0. Tokens that deliver less than
    /// the amount transferred (fee on transfer) are refused.
    function deposit(bytes32 orderKey, address seller, address token, uint256 amount)
        external
        payable
        nonReentrant
    {
        if (deals[orderKey].state != State.None) revert AlreadyExists();
        if (seller == address(0) || amount == 0) revert BadDeposit();
        if (token == address(0)) {
            if (msg.value != amount) revert BadDeposit();
        } else {
            if (msg.value != 0) revert BadDeposit();
            uint256 before = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
            if (IERC20(token).balanceOf(address(this)) - before != amount) revert BadDeposit();
        }
        uint64 releaseAfter = uint64(block.timestamp) + disputeWindow;
        deals[orderKey] = Deal(msg.sender, seller, token, amount, releaseAfter, State.Held);
        emit Deposited(orderKey, msg.sender, seller, token, amount, releaseAfter);
    }

    /// Pays the seller: anyone may call it once the dispute window has
    /// passed without a dispute, or once a dispute passed its arbitration
    /// deadline undecided.
    function release(bytes32 orderKey) external nonReentrant {
        Deal storage d = deals[orderKey];
        if (d.state != State.Held && d.state != State.Disputed) revert WrongState(d.state);
        if (block.timestamp < d.releaseAfter) revert WindowOpen();
        d.state = State.Released;
        _pay(d.token, d.seller, d.amount);
        emit Released(orderKey, d.seller, d.amount);
    }

    /// The buyer, within the window, freezes the payment; the evidence
    /// stays off chain, its hash is logged.
    function dispute(bytes32 orderKey, bytes32 evidenceHash) external {
        Deal storage d = deals[orderKey];
        if (msg.sender != d.buyer) revert NotBuyer();
        if (d.state != State.Held) revert WrongState(d.state);
        if (block.timestamp >= d.releaseAfter) revert WindowClosed();
        d.state = State.Disputed;
        uint64 decideBy = uint64(block.timestamp) + arbitrationPeriod;
        d.releaseAfter = decideBy;
        emit Disputed(orderKey, evidenceHash, decideBy);
    }

    /// The arbiter pays `toBuyer` back and the rest to the seller.
    function resolve(bytes32 orderKey, uint256 toBuyer, bytes32 decisionHash) external nonReentrant {
        if (msg.sender != arbiter) revert NotArbiter();
        Deal storage d = deals[orderKey];
        if (d.state != State.Disputed) revert WrongState(d.state);
        if (toBuyer > d.amount) revert SplitTooLarge();
        d.state = State.Resolved;
        uint256 toSeller = d.amount - toBuyer;
        if (toBuyer > 0) _pay(d.token, d.buyer, toBuyer);
        if (toSeller > 0) _pay(d.token, d.seller, toSeller);
        emit Resolved(orderKey, toBuyer, toSeller, decisionHash);
    }

    function _pay(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            Address.sendValue(payable(to), amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
