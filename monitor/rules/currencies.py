"""ISO 4217 alphabetic currency codes (list one: currencies, funds, precious metals).

Current codes as of 2026, including funds (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI,
UYW), precious metals and special codes (XAU, XAG, XPD, XPT, XDR, XSU, XUA, XBA-XBD,
XTS, XXX) and the recent additions XCG (Caribbean guilder, 2025), ZWG (Zimbabwe Gold,
2024), SLE (2022) and VED (2021). Withdrawn codes (HRK, CUC, ANG, ZWL, SLL) and
non-ISO money (BTC, USDT, RUR) are absent on purpose. BGN is kept: senders still use
it during Bulgaria's move to the euro. Check case-insensitively with ``is_currency``.
"""

from __future__ import annotations

ISO_4217_CODES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
    BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF
    DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
    HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK
    LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA
    XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG
    """.split()
)


def is_currency(value: str) -> bool:
    """True when value (already trimmed) is an ISO 4217 alphabetic code, any case."""
    return len(value) == 3 and value.isascii() and value.upper() in ISO_4217_CODES
