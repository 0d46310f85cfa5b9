//! The merchant side: 402 challenges, settlement and receipt checks in front of an API.
//! Not built yet: see the open issue "The verifier core".
