//! Off-chain types shared by the verifier and the client: the x402 wire format and the
//! `receipt` scheme. Not built yet: see the open issue "The verifier core".
